"""mcpool: load-test and diagnose how a threaded Python program shares pylibmc clients."""

__version__ = "0.1.0"
