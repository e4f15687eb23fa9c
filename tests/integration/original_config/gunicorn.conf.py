# The original snekbox's Gunicorn settings, as its users mount them over ours: plain sync
# workers, two of them, and the original's logger path. Only the bind address differs in the
# test (a loopback port on the command line), as "host paths aside" allows.
workers = 2
bind = "0.0.0.0:8060"
logger_class = "snekbox.logging.GunicornLogger"
access_logformat = "%(m)s %(U)s%(q)s %(s)s %(b)s %(L)ss"
access_logfile = "-"
wsgi_app = "snekbox:SnekAPI()"
