"""What `gpuq_web` does before it serves: the objects it loaded stay out of the garbage collector's way."""

import gc
import sys

from scheduling.management.commands.gpuq_web import freeze_startup_objects


def test_the_application_and_its_views_are_loaded_and_frozen_before_serving():
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        freeze_startup_objects()
        # Everything a request needs was imported first, so it is frozen rather than collected over and
        # over: the ASGI application and the views of the URL conf.
        assert "queueproject.asgi" in sys.modules and "scheduling.api.views" in sys.modules
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()  # the test process goes on collecting as before
