"""promscope: how metrics get from a service to its monitoring, both ways they travel.

The engine: pure Python, asyncio-native, no Textual and no click.
"""

__version__ = "0.1.0"
