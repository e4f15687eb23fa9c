"""Serving snekbox under Gunicorn so that slow or overwhelming clients cannot starve it.

`worker.BoundedThreadWorker` is the worker class config/gunicorn.conf.py names; `heads` keeps
the bookkeeping of connections whose request head is still arriving, `answers` the few replies
the worker writes itself, and `settings` the environment variables that tune them.
"""
