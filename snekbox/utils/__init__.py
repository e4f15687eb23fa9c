"""Process-wide plumbing shared by the server and the CLI: logging, Gunicorn glue, Sentry."""
