"""refforge: grounded instruction-tuning corpora from real vision annotations.

Importing this package is cheap: no Ray, torch, cv2 or segment_anything at import time.
"""

__version__ = "0.1.0"
