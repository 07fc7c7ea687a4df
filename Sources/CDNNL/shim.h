// oneDNN 3.2's C API (the onednn-cpu-gomp wheel, unpacked into .deps/ by Ops/setup).
// Imported only by the Engine module.
#include <oneapi/dnnl/dnnl.h>
