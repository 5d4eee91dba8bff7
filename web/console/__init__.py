"""The admin console: server-rendered pages under /console (routes.py), sign-in, roles and CSRF (auth.py)."""
