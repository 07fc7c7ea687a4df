// libdeflate (Debian's libdeflate-dev): whole-buffer zlib decompression and CRC-32 for the PNG
// fast path. Imported only by Imaging.
#include <libdeflate.h>
