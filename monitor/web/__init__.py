"""The central station in a browser: each bed's live ECG strip, heart rate and alarms, from alert buses.

- ``_ward``: :class:`WardState`, what the page shows, kept from bus messages;
- ``_feed``: :class:`BusFeed`, one monitor's bus read into the ward (the reference bridge's logic), and
  :class:`LocalFeed`, this process's own bus handed over in-process (``ecg-monitor --web``);
- ``_server``: :class:`CentralServer`, the page, its WebSocket feed, acknowledge and audio pause (aiohttp);
- ``_station``: :class:`Station`, all of them together (``ecg-central``, ``ecg-monitor --web``);
- ``static/``: the page itself (HTML, CSS, JavaScript), served from the package, nothing from elsewhere.
"""

from monitor.web._feed import TOPICS, BusFeed, LocalFeed
from monitor.web._server import CSP, CentralServer, is_loopback
from monitor.web._station import Station, read_token
from monitor.web._ward import PRIORITY_RANK, WardState, order_alarms

__all__ = [
    "CSP",
    "PRIORITY_RANK",
    "TOPICS",
    "BusFeed",
    "CentralServer",
    "LocalFeed",
    "Station",
    "WardState",
    "is_loopback",
    "order_alarms",
    "read_token",
]
