// zlib (Debian's zlib1g-dev), for CRC-32 checksums of model chunks. Imported only by Stages.
#include <zlib.h>
