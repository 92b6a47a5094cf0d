"""Test helpers with the names of ``aiosmtpd.testing``, so aiosmtpd's own
tests and test code written against it run on the modern face."""
