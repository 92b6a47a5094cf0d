"""The one SMTP engine shared by the modern and the legacy face, sans-I/O.

``framing`` turns bytes into command lines and message data; ``grammar``
parses what is inside a command line; ``esmtp`` decides the ESMTP rules
(parameters, EHLO keywords, line limits, sequence, junk budget);
``starttls`` and ``sasl`` decide STARTTLS and AUTH; ``replies`` holds the
reply texts per dialect.  None knows about sockets, event loops or handlers.
"""
