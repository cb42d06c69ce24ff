"""The pure core of notifications: the catalogue of types, delivery scheduling decisions
(quiet hours, e-mail rate limit and digests, retry backoff, daily summary timing) and the
payloads each channel sends. No Django, no clock: the current time is always an argument."""
