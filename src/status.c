/*
 * status.c - library version and the text of status codes.
 */
#include "internal.h"

FASA_API unsigned fasa_version_number(void) { return FASA_VERSION_NUMBER; }

FASA_API const char *fasa_version_string(void) { return FASA_VERSION_STRING; }

typedef struct status_text {
    const char *name;
    const char *text;
} status_text;

/* Indexed by the status value; the values are fixed forever (fasa.h). */
static const status_text status_table[] = {
    {"FASA_OK", "success"},
    {"FASA_ERR_NULL_POINTER", "a required pointer argument is NULL"},
    {"FASA_ERR_INVALID_ARGUMENT", "an enum, flag or option value is not valid"},
    {"FASA_ERR_ZERO_SIZE", "a size that must be positive is zero"},
    {"FASA_ERR_OVERFLOW", "sizes overflow size_t or the index type"},
    {"FASA_ERR_BAD_SHAPE", "shapes of the arguments are inconsistent"},
    {"FASA_ERR_BAD_STRIDE", "strides are too small, overlapping or odd"},
    {"FASA_ERR_BAD_DTYPE", "unknown or unsupported element type"},
    {"FASA_ERR_BAD_BUDGET", "budget is zero, negative, NaN or infinite"},
    {"FASA_ERR_PROFILE_MISMATCH", "profile does not fit the tensors or the layer"},
    {"FASA_ERR_WORKSPACE_TOO_SMALL", "workspace is smaller than the queried size"},
    {"FASA_ERR_BUFFER_TOO_SMALL", "an output buffer or capacity is too small"},
    {"FASA_ERR_BAD_INDEX", "index out of range, unsorted or repeated"},
    {"FASA_ERR_NONFINITE", "NaN or infinity where a finite value is required"},
    {"FASA_ERR_ALIASING", "an output overlaps an input or another output"},
    {"FASA_ERR_OUT_OF_MEMORY", "memory allocation failed"},
    {"FASA_ERR_IO", "file could not be opened, read or written"},
    {"FASA_ERR_BAD_FILE", "not a profile, truncated or inconsistent"},
    {"FASA_ERR_BAD_VERSION", "profile file version not supported"},
    {"FASA_ERR_CHECKSUM", "profile file checksum mismatch"},
    {"FASA_ERR_BAD_STATE", "object used in the wrong state"},
    {"FASA_ERR_UNSUPPORTED", "valid request this build cannot serve"},
    {"FASA_ERR_MISALIGNED", "pointer or quant-block alignment requirement not met"},
};

static const status_text *lookup(fasa_status status)
{
    /* Compare as long long: the enum's underlying type may be unsigned, and
     * callers may pass any int. */
    long long s = (long long)status;
    if (s < 0 || s >= (long long)(sizeof status_table / sizeof status_table[0]))
        return NULL;
    return &status_table[s];
}

FASA_API const char *fasa_status_string(fasa_status status)
{
    const status_text *e = lookup(status);
    return e ? e->text : "unknown fasa_status";
}

FASA_API const char *fasa_status_name(fasa_status status)
{
    const status_text *e = lookup(status);
    return e ? e->name : "FASA_ERR_UNKNOWN";
}
