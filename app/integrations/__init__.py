"""Client adapters that training loops import: TRL, OpenRLHF, verl.

They need only an HTTP client (httpx), none of the server's dependencies.
"""
