#ifndef XRAY_CPNG_SHIM_H
#define XRAY_CPNG_SHIM_H
#include <png.h>

/* Swift does not import function-like macros; these wrap the ones the decoder needs. */
static inline size_t xray_png_image_row_stride(const png_image *image) {
    return PNG_IMAGE_ROW_STRIDE(*image);
}
static inline size_t xray_png_image_buffer_size(const png_image *image) {
    return PNG_IMAGE_BUFFER_SIZE(*image, PNG_IMAGE_ROW_STRIDE(*image));
}
static inline unsigned xray_png_image_sample_channels(png_uint_32 format) {
    return PNG_IMAGE_SAMPLE_CHANNELS(format);
}
static inline unsigned xray_png_image_sample_component_size(png_uint_32 format) {
    return PNG_IMAGE_SAMPLE_COMPONENT_SIZE(format);
}
#endif
