// Parsing, editing, writing and rendering DICOM objects with DCMTK; JPEG 2000 through GDCM.
#include "CDicom.h"
#include "internal.h"

#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcostrmb.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmimgle/dcmimage.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/oflog/oflog.h"

#include <gdcmImageChangeTransferSyntax.h>
#include <gdcmImageReader.h>
#include <gdcmImageWriter.h>
#include <gdcmTrace.h>

struct xd_object {
    DcmFileFormat file;
};

void xd_internal_fail(xd_error *error, const std::string &message, xd_error_kind kind) {
    if (error == nullptr) return;
    error->kind = kind;
    std::snprintf(error->message, sizeof error->message, "%s", message.c_str());
}

namespace {

void fail(xd_error *error, const std::string &message, xd_error_kind kind = XD_UNREADABLE) {
    xd_internal_fail(error, message, kind);
}

}  // namespace

void xd_internal_set_up() {
    static std::once_flag once;
    std::call_once(once, [] {
        OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
        // GDCM writes its warnings to standard error; its failures come back as errors here.
        gdcm::Trace::WarningOff();
        gdcm::Trace::DebugOff();
        gdcm::Trace::ErrorOff();
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
        DcmRLEDecoderRegistration::registerCodecs();
    });
}

namespace {

DcmTagKey key(uint32_t tag) { return DcmTagKey(Uint16(tag >> 16), Uint16(tag & 0xffff)); }

bool parseInto(DcmFileFormat &file, const uint8_t *bytes, size_t count, xd_error *error) {
    DcmInputBufferStream stream;
    stream.setBuffer(bytes, offile_off_t(count));
    stream.setEos();
    file.transferInit();
    // Elements longer than the input cannot be read; DCMTK checks lengths against the stream.
    OFCondition status = file.read(stream, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    file.transferEnd();
    if (status.bad()) {
        fail(error, std::string("not a readable DICOM object (not DICOM, truncated, or a length that runs past the end): ") +
                        status.text());
        return false;
    }
    return true;
}

bool isJPEG2000(E_TransferSyntax xfer) {
    return xfer == EXS_JPEG2000LosslessOnly || xfer == EXS_JPEG2000 ||
           xfer == EXS_JPEG2000MulticomponentLosslessOnly || xfer == EXS_JPEG2000Multicomponent;
}

}  // namespace

std::vector<uint8_t> xd_internal_write(DcmFileFormat &file, E_TransferSyntax xfer, xd_error *error, bool &ok) {
    ok = false;
    std::vector<uint8_t> out;
    if (xfer == EXS_Unknown) xfer = file.getDataset()->getOriginalXfer();
    if (xfer == EXS_Unknown) xfer = EXS_LittleEndianExplicit;
    file.getMetaInfo()->clear();
    std::vector<char> chunk(1 << 20);
    DcmOutputBufferStream stream(chunk.data(), offile_off_t(chunk.size()));
    file.transferInit();
    OFCondition status = file.write(stream, xfer, EET_ExplicitLength, nullptr);
    while (status == EC_StreamNotifyClient) {
        void *buffer = nullptr;
        offile_off_t length = 0;
        stream.flushBuffer(buffer, length);
        out.insert(out.end(), static_cast<uint8_t *>(buffer), static_cast<uint8_t *>(buffer) + length);
        status = file.write(stream, xfer, EET_ExplicitLength, nullptr);
    }
    file.transferEnd();
    if (status.bad()) {
        fail(error, std::string("cannot write the DICOM object: ") + status.text(), XD_UNWRITABLE);
        return out;
    }
    // A compression filter (deflated transfer syntax) holds data until flushed.
    void *buffer = nullptr;
    offile_off_t length = 0;
    stream.flush();
    while (!stream.isFlushed()) {
        stream.flushBuffer(buffer, length);
        out.insert(out.end(), static_cast<uint8_t *>(buffer), static_cast<uint8_t *>(buffer) + length);
        stream.flush();
    }
    stream.flushBuffer(buffer, length);
    out.insert(out.end(), static_cast<uint8_t *>(buffer), static_cast<uint8_t *>(buffer) + length);
    ok = true;
    return out;
}

namespace {

/// JPEG 2000 pixel data decompressed by GDCM (DCMTK's free edition has no JPEG 2000 codec)
/// into an explicit VR little endian object DCMTK can render.
bool decompressJPEG2000(DcmFileFormat &file, DcmFileFormat &into, xd_error *error) {
    bool ok = false;
    std::vector<uint8_t> bytes = xd_internal_write(file, EXS_Unknown, error, ok);
    if (!ok) return false;
    std::istringstream input(std::string(bytes.begin(), bytes.end()));
    gdcm::ImageReader reader;
    reader.SetStream(input);
    if (!reader.Read()) {
        fail(error, "corrupt JPEG 2000 DICOM object: GDCM cannot read it", XD_CORRUPT_IMAGE);
        return false;
    }
    gdcm::ImageChangeTransferSyntax change;
    change.SetTransferSyntax(gdcm::TransferSyntax::ExplicitVRLittleEndian);
    change.SetInput(reader.GetImage());
    if (!change.Change()) {
        fail(error, "corrupt JPEG 2000 pixel data: GDCM (OpenJPEG) cannot decompress it", XD_CORRUPT_IMAGE);
        return false;
    }
    gdcm::ImageWriter writer;
    std::ostringstream output;
    writer.SetStream(output);
    writer.SetFile(reader.GetFile());
    writer.SetImage(change.GetOutput());
    if (!writer.Write()) {
        fail(error, "cannot write the decompressed JPEG 2000 object");
        return false;
    }
    std::string text = output.str();
    return parseInto(into, reinterpret_cast<const uint8_t *>(text.data()), text.size(), error);
}

uint8_t *render(DcmFileFormat &file, size_t maxPixels, xd_image_info *info, xd_error *error) {
    DcmDataset *dataset = file.getDataset();
    if (!dataset->tagExists(DCM_PixelData)) {
        OFString sopClass;
        dataset->findAndGetOFString(DCM_SOPClassUID, sopClass);
        fail(error, "not an image: the object has no Pixel Data (SOP class " +
                        std::string(sopClass.empty() ? "absent" : sopClass.c_str()) + ")", XD_NOT_A_RADIOGRAPH);
        return nullptr;
    }
    Uint16 rows = 0, columns = 0, samples = 1, allocated = 0, stored = 0, representation = 0;
    if (dataset->findAndGetUint16(DCM_Rows, rows).bad() || dataset->findAndGetUint16(DCM_Columns, columns).bad() ||
        rows == 0 || columns == 0) {
        fail(error, "corrupt DICOM image: Rows or Columns absent or zero", XD_CORRUPT_IMAGE);
        return nullptr;
    }
    dataset->findAndGetUint16(DCM_SamplesPerPixel, samples);
    dataset->findAndGetUint16(DCM_BitsAllocated, allocated);
    dataset->findAndGetUint16(DCM_BitsStored, stored);
    dataset->findAndGetUint16(DCM_PixelRepresentation, representation);
    OFString photometric, frames;
    dataset->findAndGetOFString(DCM_PhotometricInterpretation, photometric);
    if (dataset->findAndGetOFString(DCM_NumberOfFrames, frames).good() && !frames.empty() && frames != "1") {
        fail(error, "multi-frame DICOM object (" + std::string(frames.c_str()) + " frames): a chest radiograph is one frame", XD_NOT_A_RADIOGRAPH);
        return nullptr;
    }
    if (samples != 1 || (photometric != "MONOCHROME1" && photometric != "MONOCHROME2")) {
        fail(error, "not a greyscale radiograph: photometric interpretation '" + std::string(photometric.c_str()) +
                        "', " + std::to_string(samples) + " samples per pixel", XD_NOT_A_RADIOGRAPH);
        return nullptr;
    }
    if (size_t(rows) * size_t(columns) > maxPixels) {
        fail(error, "image of " + std::to_string(columns) + "x" + std::to_string(rows) + " pixels exceeds the " +
                        std::to_string(maxPixels) + "-pixel limit (decompression-bomb guard)", XD_TOO_LARGE);
        return nullptr;
    }
    if (allocated != 8 && allocated != 16) {
        fail(error, "unsupported DICOM image: " + std::to_string(allocated) + " bits allocated (8 or 16 expected)", XD_NOT_A_RADIOGRAPH);
        return nullptr;
    }
    // Rendering decompresses in place and drops the compressed form, so it works on a copy:
    // the object stays writable in the transfer syntax it came in.
    DcmFileFormat decompressed;
    if (isJPEG2000(dataset->getOriginalXfer())) {
        if (!decompressJPEG2000(file, decompressed, error)) return nullptr;
    } else {
        decompressed = file;
    }
    DcmFileFormat *source = &decompressed;
    DicomImage image(source, source->getDataset()->getOriginalXfer(), CIF_DecompressCompletePixelData, 0, 1);
    if (image.getStatus() != EIS_Normal) {
        fail(error, std::string("corrupt DICOM image: ") + DicomImage::getString(image.getStatus()), XD_CORRUPT_IMAGE);
        return nullptr;
    }
    if (!image.isMonochrome() || image.getWidth() != columns || image.getHeight() != rows) {
        fail(error, "corrupt DICOM image: the pixel data does not match Rows, Columns and the photometric interpretation", XD_CORRUPT_IMAGE);
        return nullptr;
    }
    xd_voi voi = XD_MIN_MAX;
    if (image.getVoiLutCount() > 0 && image.setVoiLut(0)) {
        voi = XD_VOI_LUT;
    } else if (image.getWindowCount() > 0 && image.setWindow(0)) {
        voi = XD_WINDOW;
    } else if (!image.setMinMaxWindow(0)) {
        fail(error, "corrupt DICOM image: no pixel range to window", XD_CORRUPT_IMAGE);
        return nullptr;
    }
    const size_t count = size_t(rows) * size_t(columns);
    const void *pixels = image.getOutputData(8, 0, 0);
    if (pixels == nullptr || image.getOutputDataSize(8) != count) {
        fail(error, "corrupt DICOM image: the pixel data could not be rendered (truncated or inconsistent)", XD_CORRUPT_IMAGE);
        return nullptr;
    }
    auto *out = static_cast<uint8_t *>(std::malloc(count));
    if (out == nullptr) {
        fail(error, "out of memory rendering the image");
        return nullptr;
    }
    std::memcpy(out, pixels, count);
    info->width = columns;
    info->height = rows;
    info->bits_allocated = allocated;
    info->bits_stored = stored;
    info->signed_pixels = representation == 1;
    info->monochrome1 = photometric == "MONOCHROME1";
    info->voi = voi;
    return out;
}

}  // namespace

extern "C" {

xd_object *xd_parse(const uint8_t *bytes, size_t count, xd_error *error) {
    try {
        xd_internal_set_up();
        auto *object = new xd_object();
        if (!parseInto(object->file, bytes, count, error)) {
            delete object;
            return nullptr;
        }
        return object;
    } catch (const std::exception &e) {
        fail(error, std::string("DICOM library error: ") + e.what());
    } catch (...) {
        fail(error, "DICOM library error");
    }
    return nullptr;
}

void xd_free(xd_object *object) { delete object; }

size_t xd_tags(const xd_object *object, uint32_t *tags, size_t capacity) {
    DcmDataset *dataset = const_cast<xd_object *>(object)->file.getDataset();
    const unsigned long count = dataset->card();
    for (unsigned long i = 0; i < count && i < capacity; i++) {
        DcmTag tag = dataset->getElement(i)->getTag();
        tags[i] = (uint32_t(tag.getGroup()) << 16) | tag.getElement();
    }
    return size_t(count);
}

int xd_is_sequence(const xd_object *object, uint32_t tag) {
    DcmElement *element = nullptr;
    DcmDataset *dataset = const_cast<xd_object *>(object)->file.getDataset();
    if (dataset->findAndGetElement(key(tag), element, OFFalse).bad() || element == nullptr) return 0;
    return element->ident() == EVR_SQ ? 1 : 0;
}

long xd_string(const xd_object *object, uint32_t tag, char *out, size_t capacity) {
    try {
        DcmElement *element = nullptr;
        DcmDataset *dataset = const_cast<xd_object *>(object)->file.getDataset();
        if (dataset->findAndGetElement(key(tag), element, OFFalse).bad() || element == nullptr) return -1;
        if (element->ident() == EVR_SQ || element->ident() == EVR_OB || element->ident() == EVR_OW ||
            element->ident() == EVR_UN || element->ident() == EVR_pixelSQ || element->ident() == EVR_OF) return -2;
        OFString text;
        if (element->getOFStringArray(text).bad()) return -2;
        if (capacity > 0) std::snprintf(out, capacity, "%s", text.c_str());
        return long(text.length());
    } catch (...) {
        return -2;
    }
}

int xd_set_string(xd_object *object, uint32_t tag, const char *value, xd_error *error) {
    try {
        OFCondition status = object->file.getDataset()->putAndInsertString(key(tag), value);
        if (status.bad()) {
            fail(error, std::string("cannot set a DICOM element: ") + status.text(), XD_UNWRITABLE);
            return -1;
        }
        return 0;
    } catch (...) {
        fail(error, "DICOM library error setting an element");
        return -1;
    }
}

int xd_remove(xd_object *object, uint32_t tag) {
    return object->file.getDataset()->findAndDeleteElement(key(tag), OFFalse, OFFalse).good() ? 1 : 0;
}

void xd_transfer_syntax(const xd_object *object, char *out, size_t capacity) {
    E_TransferSyntax xfer = const_cast<xd_object *>(object)->file.getDataset()->getOriginalXfer();
    DcmXfer info(xfer);
    std::snprintf(out, capacity, "%s", xfer == EXS_Unknown ? "" : info.getXferID());
}

uint8_t *xd_write(xd_object *object, size_t *count, xd_error *error) {
    try {
        bool ok = false;
        std::vector<uint8_t> bytes = xd_internal_write(object->file, EXS_Unknown, error, ok);
        if (!ok) return nullptr;
        auto *out = static_cast<uint8_t *>(std::malloc(bytes.empty() ? 1 : bytes.size()));
        if (out == nullptr) {
            fail(error, "out of memory writing the DICOM object");
            return nullptr;
        }
        std::memcpy(out, bytes.data(), bytes.size());
        *count = bytes.size();
        return out;
    } catch (...) {
        fail(error, "DICOM library error writing the object");
        return nullptr;
    }
}

void xd_free_buffer(uint8_t *buffer) { std::free(buffer); }

uint8_t *xd_render_grey8(xd_object *object, size_t max_pixels, xd_image_info *info, xd_error *error) {
    try {
        xd_internal_set_up();
        return render(object->file, max_pixels, info, error);
    } catch (const std::bad_alloc &) {
        fail(error, "out of memory decoding the image", XD_CORRUPT_IMAGE);
    } catch (const std::exception &e) {
        fail(error, std::string("corrupt DICOM image: ") + e.what(), XD_CORRUPT_IMAGE);
    } catch (...) {
        fail(error, "corrupt DICOM image: the DICOM library failed on it", XD_CORRUPT_IMAGE);
    }
    return nullptr;
}

}  // extern "C"
