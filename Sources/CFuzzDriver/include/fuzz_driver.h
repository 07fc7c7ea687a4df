#ifndef XRAY_FUZZ_DRIVER_H
#define XRAY_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/* Runs libFuzzer's driver over `argv` with `callback` as the target, when the binary is linked
 * with libFuzzer (-sanitize=fuzzer); returns -1 when it is not. Whichever `main` the linker
 * keeps (libFuzzer's or the harness's), fuzzing then works the same. */
int xray_fuzz_run_driver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif
