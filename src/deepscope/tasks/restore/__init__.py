"""The restore task: an image from an image (deblurring, in-silico labelling, 2x super-resolution).

=================  ==================================================================================
``options``        :class:`RestoreOptions` (card ``output`` + the caller's arguments), :class:`RestoreResult`
``plugin``         ``restore/image``: a U-Net on the input's own normalisation, output in the input's dtype
``training``       :class:`RestoreTask` (image-to-image regression) and its losses
=================  ==================================================================================
"""

from deepscope.tasks.restore.options import DTYPES, RestoreOptions, RestoreResult
from deepscope.tasks.restore.plugin import ImageRestoration
from deepscope.tasks.restore.training import LOSSES, RestoreTask, ssim_loss

Options = RestoreOptions
Result = RestoreResult

__all__ = ["RestoreOptions", "RestoreResult", "Options", "Result", "ImageRestoration", "DTYPES", "RestoreTask",
           "LOSSES", "ssim_loss"]
