"""The modules: recurrent cells over one shared driver (``base``)."""
