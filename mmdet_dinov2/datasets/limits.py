"""Limits on what one input may ask of memory, checked before any pixel is decoded (a small file
can declare an image of any size): docs/reliability.md, "Limits on one input"."""
from PIL import Image

MAX_PIXELS = 100_000_000  # width * height of one image: 10000 x 10000
MAX_OBJECTS = 2000  # annotations of one training image


class InputLimitError(ValueError):
    """An input over one of the limits above."""


def check_image_pixels(path, max_pixels=MAX_PIXELS, how_to_raise='max_pixels'):
    """``(width, height)`` as the file's header declares them (the pixels are not decoded); an
    :class:`InputLimitError` naming ``path`` when they are more than ``max_pixels`` or the file is
    no readable image. ``how_to_raise`` names the setting that lifts the limit."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Image.DecompressionBombError as err:  # PIL's own limit, above MAX_PIXELS
        raise InputLimitError(f'{path}: PIL refuses to open it: {err}') from err
    except (OSError, SyntaxError, ValueError) as err:
        raise InputLimitError(f'{path}: not a readable image ({err})') from err
    message = pixels_over(path, width, height, max_pixels, how_to_raise)
    if message:
        raise InputLimitError(message)
    return width, height


def pixels_over(path, width, height, max_pixels, how_to_raise):
    """Why an image of ``width`` x ``height`` at ``path`` is refused, or None within the limit."""
    if max_pixels is None or width * height <= max_pixels:
        return None
    return (f'{path}: {width}x{height} = {width * height:,} pixels, over the limit of '
            f'{max_pixels:,}; decoding it would take {width * height * 3 / 2**30:.1f} GiB. '
            f'Resize the image, or raise the limit with {how_to_raise}')
