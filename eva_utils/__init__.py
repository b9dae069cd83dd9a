"""eva_utils: the helper package behind the course's notebooks.

One import per job, as d2l's package serves its book:

* :mod:`eva_utils.data`     real MNIST (verified, offline fallback), fast and classic loaders
* :mod:`eva_utils.augment`  batched augmentation on tensors
* :mod:`eva_utils.models`   one model per course step, ``build(name)``, ``load(path)``
* :mod:`eva_utils.rf`       receptive-field tables from the real forward pass, ``measure_rf``
* :mod:`eva_utils.summary`  the torchsummary-style table with an RF column (text and HTML)
* :mod:`eva_utils.engine`   ``train``/``test``/``fit``, ``seed_everything``, the speed switches
* :mod:`eva_utils.recipes`  how each step trains (``recipes.run``), quick mode, the course target
* :mod:`eva_utils.histories` what a run measured, saved as ``results/<step>.json`` and read back
* :mod:`eva_utils.plots`, :mod:`eva_utils.widgets`, :mod:`eva_utils.report`  what notebooks show
* ``python -m eva_utils``   the command line (``train``, ``seeds``, ``bench``)

A notebook starts with one call, ``device = eva_utils.start()`` (:func:`eva_utils.report.start`).
"""
from .devices import pick_device
from .engine import Speed, count_parameters, fit, seed_everything, test, train
from .histories import History
from .report import start
from .rf import measure_rf, rf_table
from .summary import summary

__version__ = "0.2.0"

#: Where the course is published. Each release is tagged ``v<__version__>`` there.
COURSE_REPO = "eva-course/small-cnns"
#: What every notebook's Colab cell installs: this version, by its tag, never a moving
#: branch, so a notebook runs against the package it was executed with.
COLAB_INSTALL = f"eva-utils @ git+https://github.com/{COURSE_REPO}.git@v{__version__}"

__all__ = ["History", "Speed", "count_parameters", "fit", "measure_rf", "pick_device", "rf_table",
           "seed_everything", "start", "summary", "test", "train"]
