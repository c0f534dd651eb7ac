"""Optics checks: diffraction limit, Nyquist pixel size, electron wavelength, sampling checks.

Which criterion
---------------
The resolvable distance of a lens with numerical aperture NA at wavelength lambda is taken by
default from **Abbe**: ``d = lambda / (2 NA)``. The **Rayleigh** criterion,
``d = 0.61 lambda / NA``, is 22% larger (two Airy discs separated by the radius of the first
dark ring). Nyquist sampling needs at least two pixels per resolvable distance, so the largest
pixel that keeps every detail the optics pass is ``d / 2``. Abbe is the default because it is
the stricter of the two (it asks for smaller pixels); pass ``criterion="rayleigh"`` for the
looser, more common rule of thumb. Both are widefield limits: confocal, SIM or STED resolve
finer, so an image that passes may still be undersampled for those.

Wavelengths are in nanometres, pixel sizes in micrometres, voltages in kilovolts.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from deepscope.errors import InputError, user_stacklevel
from deepscope.provenance.meta import ELECTRON_MODALITIES, ImageMeta

__all__ = ["CRITERIA", "diffraction_limit_nm", "nyquist_pixel_size_um", "electron_wavelength_nm",
           "SamplingIssue", "UndersamplingWarning", "check_sampling"]

#: Resolution criteria: ``"abbe"`` (lambda / 2NA) and ``"rayleigh"`` (0.61 lambda / NA).
CRITERIA = ("abbe", "rayleigh")

_H = 6.62607015e-34      # Planck constant, J s
_M0 = 9.1093837015e-31   # electron rest mass, kg
_E = 1.602176634e-19     # elementary charge, C
_C = 299792458.0         # speed of light, m/s


class UndersamplingWarning(UserWarning):
    """An image's pixels are larger than its optics' Nyquist pixel size."""


def _check(wavelength_nm: float, na: float, criterion: str) -> None:
    if criterion not in CRITERIA:
        raise InputError(f"criterion={criterion!r} is not one of {CRITERIA}")
    if not (wavelength_nm > 0 and math.isfinite(wavelength_nm)):
        raise InputError(f"wavelength_nm={wavelength_nm!r} must be a positive number of nanometres")
    if not (0 < na <= 1.7):
        raise InputError(f"na={na!r} is not a numerical aperture; expected 0 < NA <= 1.7 "
                         "(oil immersion reaches about 1.49)")


def diffraction_limit_nm(wavelength_nm: float, na: float, *, criterion: str = "abbe") -> float:
    """Smallest resolvable distance in nanometres.

    Parameters
    ----------
    wavelength_nm : float
        Wavelength in nanometres (emission wavelength for fluorescence).
    na : float
        Numerical aperture of the objective (0 < NA <= 1.7).
    criterion : {"abbe", "rayleigh"}, default "abbe"
        ``lambda / (2 NA)`` or ``0.61 lambda / NA``.

    Returns
    -------
    float
        Resolvable distance in nanometres.

    Raises
    ------
    deepscope.errors.InputError
        If the wavelength is not positive, NA is out of range or the criterion is unknown.

    Examples
    --------
    >>> diffraction_limit_nm(500, 1.0)
    250.0
    >>> round(diffraction_limit_nm(500, 1.0, criterion="rayleigh"), 1)
    305.0
    """
    _check(wavelength_nm, na, criterion)
    if criterion == "abbe":
        return wavelength_nm / (2.0 * na)
    return 0.61 * wavelength_nm / na


def nyquist_pixel_size_um(wavelength_nm: float, na: float, *, criterion: str = "abbe") -> float:
    """Largest pixel size (in the sample plane, micrometres) that samples the optics at Nyquist.

    Two pixels per resolvable distance: ``diffraction_limit_nm(...) / 2``, in micrometres.

    Raises
    ------
    deepscope.errors.InputError
        As :func:`diffraction_limit_nm`.

    Examples
    --------
    >>> round(nyquist_pixel_size_um(520, 0.45), 4)   # 20x/0.45 air, GFP emission
    0.2889
    """
    return diffraction_limit_nm(wavelength_nm, na, criterion=criterion) / 2.0 / 1000.0


def electron_wavelength_nm(accelerating_voltage_kv: float) -> float:
    """Relativistic de Broglie wavelength of electrons accelerated through a voltage, in nanometres.

    ``lambda = h / sqrt(2 m0 e V (1 + e V / (2 m0 c^2)))``.

    Raises
    ------
    deepscope.errors.InputError
        If the voltage is not positive.

    Examples
    --------
    >>> round(electron_wavelength_nm(300) * 1000, 3)   # picometres at 300 kV
    1.969
    >>> round(electron_wavelength_nm(100) * 1000, 3)
    3.701
    """
    if not (accelerating_voltage_kv > 0 and math.isfinite(accelerating_voltage_kv)):
        raise InputError(f"accelerating_voltage_kv={accelerating_voltage_kv!r} must be a positive number of "
                         "kilovolts")
    ev = _E * accelerating_voltage_kv * 1e3
    p = math.sqrt(2.0 * _M0 * ev * (1.0 + ev / (2.0 * _M0 * _C ** 2)))
    return _H / p * 1e9


@dataclass(frozen=True)
class SamplingIssue:
    """One channel of an image whose pixels are coarser than its optics' Nyquist pixel size.

    Attributes
    ----------
    channel : int or None
        Channel index (None for an electron image).
    wavelength_nm : float
        Wavelength the check used.
    na : float
        Numerical aperture.
    pixel_size_um : float
        The image's (larger) pixel size.
    nyquist_um : float
        Largest pixel size that samples at Nyquist.
    criterion : str
        ``"abbe"`` or ``"rayleigh"``.
    message : str
        A sentence saying the above.
    """

    channel: int | None
    wavelength_nm: float
    na: float
    pixel_size_um: float
    nyquist_um: float
    criterion: str
    message: str

    @property
    def ratio(self) -> float:
        """How many times larger than Nyquist the pixel is."""
        return self.pixel_size_um / self.nyquist_um


def check_sampling(meta: ImageMeta, *, criterion: str = "abbe", tolerance: float = 1.0,
                   warn: bool = True) -> tuple[SamplingIssue, ...]:
    """Check that an image's pixel size samples its optics at Nyquist or finer.

    Light images use each channel's emission wavelength (else its excitation wavelength);
    electron images (modality electron/sem/tem) use the de Broglie wavelength from
    ``instrument.accelerating_voltage_kv``. An image without a pixel size, an NA or any
    wavelength cannot be checked and gives no issue (require those fields with
    ``deepscope catalog check --require`` to catch that).

    Parameters
    ----------
    meta : ImageMeta
        The image's metadata.
    criterion : {"abbe", "rayleigh"}, default "abbe"
        Resolution criterion (see the module notes).
    tolerance : float, default 1.0
        Report only pixels larger than ``tolerance`` times the Nyquist size.
    warn : bool, default True
        Also emit an :class:`UndersamplingWarning` per issue.

    Returns
    -------
    tuple of SamplingIssue
        Empty when the image is sampled finely enough or cannot be checked.

    Raises
    ------
    deepscope.errors.InputError
        If ``criterion`` is unknown.

    Examples
    --------
    >>> meta = ImageMeta.from_flat({"na": 0.95, "pixel_size_um": 0.65,
    ...                             "channels.0.emission_wavelength_nm": 461})
    >>> [round(i.ratio, 1) for i in check_sampling(meta, warn=False)]
    [5.4]
    """
    if criterion not in CRITERIA:
        raise InputError(f"criterion={criterion!r} is not one of {CRITERIA}")
    sizes = [s for s in (meta.physical_size_x_um, meta.physical_size_y_um) if s is not None]
    na = meta.objective.na
    if not sizes or na is None:
        return ()
    pixel = max(sizes)
    candidates: list[tuple[int | None, float]] = []
    if meta.instrument.modality in ELECTRON_MODALITIES:
        if meta.instrument.accelerating_voltage_kv is not None:
            candidates.append((None, electron_wavelength_nm(meta.instrument.accelerating_voltage_kv)))
    else:
        for i, ch in enumerate(meta.channels):
            wl = ch.emission_wavelength_nm or ch.excitation_wavelength_nm
            if wl is not None:
                candidates.append((i, wl))
    issues: list[SamplingIssue] = []
    for idx, wl in candidates:
        nyq = nyquist_pixel_size_um(wl, na, criterion=criterion)
        if pixel > nyq * tolerance:
            what = "electron beam" if idx is None else f"channel {idx}"
            name = "" if idx is None or not meta.channels[idx].name else f" ({meta.channels[idx].name})"
            msg = (f"{what}{name}: pixel size {pixel:.4g} um undersamples the optics "
                   f"(NA {na:g}, wavelength {wl:.4g} nm, {criterion} Nyquist pixel {nyq:.4g} um; "
                   f"{pixel / nyq:.2f}x too coarse). Details finer than {2 * pixel * 1000:.0f} nm are lost "
                   "or aliased: image at a higher magnification or bin less.")
            issues.append(SamplingIssue(idx, wl, na, pixel, nyq, criterion, msg))
    if warn:
        for issue in issues:
            warnings.warn(issue.message, UndersamplingWarning, stacklevel=user_stacklevel())
    return tuple(issues)
