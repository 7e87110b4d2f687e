"""detection: transfer learning for object detection (see README.md).

`Detector` (with `SaveOptions`), `train`, `evaluate` and `get_config` are the Python API (detection/api.py); they are
imported on first use, so `import detection.config` stays light.
"""

__all__ = ["Detector", "SaveOptions", "train", "evaluate", "get_config"]


def __getattr__(name):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'detection' has no attribute {name!r}")
