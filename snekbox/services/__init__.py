"""What the HTTP layer stands on and knows no HTTP: settings, run slots, limits, discovery.

`snekbox.api` parses requests and answers them; everything here works the same under any
front end (the Gunicorn config and worker read the settings and slots too).
"""
