"""The one SMTP wire engine shared by the modern and the legacy face.

``framing`` turns bytes into command lines and message data (sans-I/O);
``grammar`` parses what is inside a command line.  Neither knows about
sockets, event loops or handlers.
"""
