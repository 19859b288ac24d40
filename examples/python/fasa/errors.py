"""fasa_status -> Python exceptions."""
import enum

from ._lib import lib


class Status(enum.IntEnum):
    """fasa_status values (fixed forever by fasa.h)."""
    OK = 0
    ERR_NULL_POINTER = 1
    ERR_INVALID_ARGUMENT = 2
    ERR_ZERO_SIZE = 3
    ERR_OVERFLOW = 4
    ERR_BAD_SHAPE = 5
    ERR_BAD_STRIDE = 6
    ERR_BAD_DTYPE = 7
    ERR_BAD_BUDGET = 8
    ERR_PROFILE_MISMATCH = 9
    ERR_WORKSPACE_TOO_SMALL = 10
    ERR_BUFFER_TOO_SMALL = 11
    ERR_BAD_INDEX = 12
    ERR_NONFINITE = 13
    ERR_ALIASING = 14
    ERR_OUT_OF_MEMORY = 15
    ERR_IO = 16
    ERR_BAD_FILE = 17
    ERR_BAD_VERSION = 18
    ERR_CHECKSUM = 19
    ERR_BAD_STATE = 20
    ERR_UNSUPPORTED = 21
    ERR_MISALIGNED = 22


def status_name(status):
    """Stable identifier of a status, e.g. 'FASA_ERR_BAD_STRIDE'."""
    return lib.fasa_status_name(int(status)).decode()


def status_string(status):
    """Short English description of a status."""
    return lib.fasa_status_string(int(status)).decode()


class FasaError(Exception):
    """A libfasa call returned a status other than FASA_OK.

    Attributes:
      status     int, a Status member when known;
      name       the C identifier from fasa_status_name, e.g. 'FASA_ERR_BAD_SHAPE';
      message    the detail: fasa_ctx_last_error of the call (which names the
                 argument, e.g. 'q: n_tokens 5 > k n_tokens 4'), without the C
                 function prefix; the status description for calls that take
                 no context;
      function   the Python call you made, e.g. 'fasa.decode_step';
      c_function the public C function that failed, e.g. 'fasa_attention'.
    Every C call with a context clears its message first, so the text is
    always this call's, never a previous one's.
    """

    def __init__(self, status, message="", function="", c_function=""):
        try:
            self.status = Status(status)
        except ValueError:
            self.status = int(status)
        self.name = status_name(status)
        head, sep, rest = message.partition(": ")
        if sep and head.startswith("fasa_") and " " not in head:
            c_function = c_function or head
            message = rest
        self.message = message or status_string(status)
        self.function = function or c_function
        self.c_function = c_function or function
        where = self.function or "libfasa"
        if self.c_function and self.c_function != where:
            where = "%s (%s)" % (where, self.c_function)
        super().__init__("%s: %s: %s" % (where, self.name, self.message))


def check(status, ctx_handle=None, function="", c_function=""):
    """Raise FasaError unless status is FASA_OK. function: the Python call
    the user made; c_function: the C entry point, when it differs."""
    if status != 0:
        message = ""
        if ctx_handle is not None:
            message = lib.fasa_ctx_last_error(ctx_handle).decode(errors="replace")
        raise FasaError(status, message, function, c_function)
