// A C view of DCMTK (parsing, editing, writing, rendering, the C-STORE service) and of GDCM
// (JPEG 2000). Imported by the Dicom module only. No C++ type crosses this header; every
// function catches what the libraries throw and reports it as an error message.
#ifndef XRAY_CDICOM_H
#define XRAY_CDICOM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The kinds of failure.
typedef enum {
    XD_UNREADABLE = 0,       ///< not DICOM, or DICOM the library cannot parse
    XD_NOT_A_RADIOGRAPH = 1, ///< no pixel data, several frames, colour, unusual bit depths
    XD_TOO_LARGE = 2,        ///< more pixels than allowed
    XD_CORRUPT_IMAGE = 3,    ///< pixel data that does not decode
    XD_UNWRITABLE = 4,       ///< an element or object that cannot be written
} xd_error_kind;

/// Why a call failed, in words for the operator.
typedef struct {
    xd_error_kind kind;
    char message[512];
} xd_error;

/// A parsed DICOM object (file meta information and dataset), owned by the caller.
typedef struct xd_object xd_object;

/// Parses a Part 10 file (preamble, "DICM", meta information) or a bare dataset.
xd_object *xd_parse(const uint8_t *bytes, size_t count, xd_error *error);
void xd_free(xd_object *object);

/// The dataset's top-level tags (group << 16 | element), in order. Returns how many there are;
/// writes at most `capacity`.
size_t xd_tags(const xd_object *object, uint32_t *tags, size_t capacity);

/// Whether a top-level element holds a sequence (SQ).
int xd_is_sequence(const xd_object *object, uint32_t tag);

/// The value of a top-level element as text (several values joined by a backslash).
/// Returns the text's length (it may exceed `capacity`, then ask again), -1 when the element
/// is absent, -2 when its value has no text form (a sequence, binary data).
long xd_string(const xd_object *object, uint32_t tag, char *out, size_t capacity);

/// Sets (inserting when absent) a top-level element to `value`; the VR comes from the dictionary.
int xd_set_string(xd_object *object, uint32_t tag, const char *value, xd_error *error);

/// Removes a top-level element; returns 1 when it was there.
int xd_remove(xd_object *object, uint32_t tag);

/// The transfer syntax UID the object arrived in ("" when unknown).
void xd_transfer_syntax(const xd_object *object, char *out, size_t capacity);

/// Writes the object as a Part 10 file in the transfer syntax it was read in, with a file meta
/// information header made anew from the dataset. The buffer is freed with `xd_free_buffer`.
uint8_t *xd_write(xd_object *object, size_t *count, xd_error *error);
void xd_free_buffer(uint8_t *buffer);

/// How a grey image was rendered to 8 bits.
typedef enum { XD_VOI_LUT = 0, XD_WINDOW = 1, XD_MIN_MAX = 2 } xd_voi;

/// What rendering found in the object.
typedef struct {
    uint32_t width, height;
    uint16_t bits_allocated, bits_stored;
    int signed_pixels;
    int monochrome1;
    xd_voi voi;
} xd_image_info;

/// Renders a single-frame greyscale image to 8-bit grey, as a viewer shows it: modality LUT or
/// rescale, then the first VOI LUT, else the first window, else the image's own minimum and
/// maximum; MONOCHROME1 inverted so that higher is brighter. Refuses objects without pixel data,
/// multi-frame, colour and images over `max_pixels` before decompressing. Returns `width *
/// height` bytes, freed with `xd_free_buffer`.
uint8_t *xd_render_grey8(xd_object *object, size_t max_pixels, xd_image_info *info, xd_error *error);

/// Answers a C-STORE: returns the DIMSE status (0x0000 success, 0xA700 out of resources,
/// 0xC000 cannot understand, ...). `bytes` is the received object as a Part 10 file.
typedef uint16_t (*xd_store_handler)(void *context, const char *calling_ae, const char *peer,
                                     const uint8_t *bytes, size_t count);

/// A C-STORE and Verification service provider (DCMTK's DcmSCP), one association at a time.
typedef struct xd_store_server xd_store_server;

/// Binds `port` as `ae_title`; only callers named in `callers` (none: any)
/// may associate. Accepts the storage SOP classes storescu proposes, in the usual transfer syntaxes.
xd_store_server *xd_store_server_create(const char *ae_title, uint16_t port, const char *const *callers,
                                        size_t caller_count, uint32_t max_pdu, xd_store_handler handler,
                                        void *context, xd_error *error);
/// Serves associations until `xd_store_server_stop`; returns 0 after a stop, -1 on an error.
int xd_store_server_run(xd_store_server *server, xd_error *error);
/// Asks a running server to stop after its current association (within about a second).
void xd_store_server_stop(xd_store_server *server);
void xd_store_server_free(xd_store_server *server);

#ifdef __cplusplus
}
#endif
#endif
