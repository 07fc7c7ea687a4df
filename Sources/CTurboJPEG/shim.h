#ifndef XRAY_CTURBOJPEG_SHIM_H
#define XRAY_CTURBOJPEG_SHIM_H
#include <turbojpeg.h>
#endif
