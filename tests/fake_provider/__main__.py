"""`python -m tests.fake_provider --port P ...`: run the fake in the foreground."""

from .runner import main

if __name__ == "__main__":
    main()
