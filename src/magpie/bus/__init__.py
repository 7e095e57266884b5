"""Cross-node fan-out (interface, memory backend; Redis comes with scale-out)."""

from magpie.bus.interface import Bus, BusEvent, Delivery, Kick

__all__ = ["Bus", "BusEvent", "Delivery", "Kick"]
