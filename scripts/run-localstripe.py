"""Runs localstripe (the Stripe emulator the Stripe adapter's tests use) on loopback only.

localstripe's own entry point listens on every interface and pickles its whole store to
/tmp after every request; this keeps it on 127.0.0.1 and its state in memory (a restart
starts empty, which is what tests want).
Usage: python run-localstripe.py PORT
"""
import logging
import sys

from aiohttp import web
from localstripe import server
from localstripe.resources import store

store.dump_to_disk = lambda: None
# Webhook deliveries (and failures) go to the log: .local/localstripe.log.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
