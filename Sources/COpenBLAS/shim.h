// OpenBLAS's CBLAS interface (Debian's libopenblas-dev, pthread build).
// Imported only by the Engine module.
#include <cblas.h>
