"""The count task: one float estimate per image with a 95% interval.

=================  ==================================================================================
``options``        :class:`CountOptions` (card ``output`` + the caller's arguments), :class:`CountResult`
``plugins``        ``count/density`` (density U-Net, calibrated interval, hybrid object rule, domain check
                   with a generalist fallback) and ``count/regress`` (the book's CountNet)
``training``       :class:`CountTask`: density / regression targets, loss and validation for the Trainer
``pipeline_step``  :class:`CountStep`: the pipeline's ``count:`` step and its parser
=================  ==================================================================================
"""

from deepscope.tasks.count.options import CountOptions, CountResult, GeneralRule, HybridRule, Interval
from deepscope.tasks.count.pipeline_step import OBJECT_COUNT, CountStep
from deepscope.tasks.count.plugins import DensityCounting, RegressCounting, area_factor, area_per_object
from deepscope.tasks.count.training import CountTask

Options = CountOptions
Result = CountResult

__all__ = ["CountOptions", "CountResult", "Options", "Result", "Interval", "HybridRule", "GeneralRule",
           "DensityCounting", "RegressCounting", "area_factor", "area_per_object", "CountTask", "CountStep",
           "OBJECT_COUNT"]
