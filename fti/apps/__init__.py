"""Applications: the command line (``python -m fti``), the demo and the platform page. They may
import every pipeline and the ground below them."""
