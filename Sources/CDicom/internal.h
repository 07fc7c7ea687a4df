// What the shim's two files share; not part of the C interface.
#ifndef XRAY_CDICOM_INTERNAL_H
#define XRAY_CDICOM_INTERNAL_H

#include <string>
#include <vector>

#include "CDicom.h"
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcfilefo.h"

/// Codecs registered and DCMTK's logging quietened, once per process.
void xd_internal_set_up();
/// Copies `message` into `error` (when not null).
void xd_internal_fail(xd_error *error, const std::string &message, xd_error_kind kind = XD_UNREADABLE);
/// `file` as Part 10 bytes in `xfer` (EXS_Unknown: the transfer syntax it was read in), with
/// fresh file meta information.
std::vector<uint8_t> xd_internal_write(DcmFileFormat &file, E_TransferSyntax xfer, xd_error *error, bool &ok);

#endif
