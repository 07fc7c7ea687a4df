// Parsing, editing, writing and rendering DICOM objects with DCMTK; JPEG 2000 through GDCM.
#include "CDicom.h"
#include "internal.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/syscall.h>
#include <unistd.h>
#include <zlib.h>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcistrmf.h"
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

/// Memory-backed files (memfd) holding bytes DCMTK reads: closed when the owner goes.
/// Declared before the DcmFileFormat that reads from them, so they outlive it.
struct MemoryFiles {
    std::vector<int> descriptors;
    MemoryFiles() = default;
    MemoryFiles(const MemoryFiles &) = delete;
    MemoryFiles &operator=(const MemoryFiles &) = delete;
    ~MemoryFiles() {
        for (int fd : descriptors) close(fd);
    }
};

struct xd_object {
    MemoryFiles files;
    DcmFileFormat file;
    /// The transfer syntax the object arrived in, when the dataset was read in another one
    /// (a deflated dataset is inflated and read as explicit VR little endian).
    E_TransferSyntax arrival = EXS_Unknown;
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

/// The most a deflated dataset may inflate to.
constexpr size_t maxInflatedBytes = 256u << 20;

/// Elements longer than this are not read while parsing but skipped over, which fails when the
/// file is shorter than the length says; they are read when used, from the memory file. DCMTK
/// reading from a buffer allocates whatever a length field says first (a 4 GB length in a
/// 100-byte record, found by fuzzing); from a file it checks the length against the file.
constexpr Uint32 deferredLength = 4096;

/// `bytes` as a memory file whose path DCMTK can open (and reopen for deferred values).
bool memoryFile(MemoryFiles &files, const uint8_t *bytes, size_t count, OFFilename &path, xd_error *error) {
    int fd = int(syscall(SYS_memfd_create, "xray-dicom", 1u /* MFD_CLOEXEC */));
    if (fd < 0) {
        fail(error, std::string("cannot create a memory file: ") + std::strerror(errno), XD_UNREADABLE);
        return false;
    }
    files.descriptors.push_back(fd);
    size_t written = 0;
    while (written < count) {
        ssize_t n = write(fd, bytes + written, count - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            fail(error, std::string("cannot write a memory file: ") + std::strerror(errno), XD_UNREADABLE);
            return false;
        }
        written += size_t(n);
    }
    path = OFFilename(("/proc/self/fd/" + std::to_string(fd)).c_str());
    return true;
}

void unreadable(xd_error *error, const OFCondition &status) {
    fail(error, std::string("not a readable DICOM object (not DICOM, truncated, or a length that runs past the end): ") +
                    status.text());
}

/// The raw-deflate (RFC 1951) data after the file meta information, inflated, at most `limit` bytes.
bool inflateDataset(const uint8_t *bytes, size_t count, std::vector<uint8_t> &out, xd_error *error) {
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) {
        fail(error, "cannot start zlib");
        return false;
    }
    z.next_in = const_cast<Bytef *>(bytes);
    z.avail_in = uInt(count);
    std::vector<uint8_t> chunk(1 << 20);
    int status = Z_OK;
    while (status != Z_STREAM_END) {
        z.next_out = chunk.data();
        z.avail_out = uInt(chunk.size());
        status = inflate(&z, Z_NO_FLUSH);
        if (status != Z_OK && status != Z_STREAM_END && !(status == Z_BUF_ERROR && z.avail_in == 0)) {
            inflateEnd(&z);
            fail(error, "corrupt deflated DICOM dataset: zlib cannot inflate it");
            return false;
        }
        size_t produced = chunk.size() - z.avail_out;
        if (out.size() + produced > maxInflatedBytes) {
            inflateEnd(&z);
            fail(error, "deflated DICOM dataset inflates past " + std::to_string(maxInflatedBytes >> 20) + " MiB", XD_TOO_LARGE);
            return false;
        }
        out.insert(out.end(), chunk.data(), chunk.data() + produced);
        if (produced == 0 && z.avail_in == 0) break;  // input ended (a stream without its end marker)
    }
    inflateEnd(&z);
    return true;
}

/// Parses a Part 10 file or a bare dataset from a memory file, lengths checked against it. A
/// deflated dataset is inflated here first (DCMTK cannot defer values inside a compressed
/// stream) and read as explicit VR little endian.
bool parseInto(DcmFileFormat &file, MemoryFiles &files, const uint8_t *bytes, size_t count, xd_error *error,
               E_TransferSyntax *arrival = nullptr) {
    OFFilename path;
    if (!memoryFile(files, bytes, count, path, error)) return false;
    DcmInputFileStream stream(path);
    if (stream.status().bad()) {
        unreadable(error, stream.status());
        return false;
    }
    // The file meta information alone first: it says whether the dataset is deflated.
    DcmMetaInfo meta;
    meta.transferInit();
    OFCondition status = meta.read(stream, EXS_Unknown, EGL_noChange, deferredLength);
    meta.transferEnd();
    OFString syntax;
    if (status.good() && meta.findAndGetOFString(DCM_TransferSyntaxUID, syntax).good() &&
        DcmXfer(syntax.c_str()).getXfer() == EXS_DeflatedLittleEndianExplicit) {
        const offile_off_t start = stream.tell();
        if (start < 0 || size_t(start) > count) {
            fail(error, "corrupt DICOM file meta information");
            return false;
        }
        std::vector<uint8_t> inflated;
        if (!inflateDataset(bytes + start, count - size_t(start), inflated, error)) return false;
        OFFilename datasetPath;
        if (!memoryFile(files, inflated.data(), inflated.size(), datasetPath, error)) return false;
        DcmInputFileStream datasetStream(datasetPath);
        DcmDataset *dataset = file.getDataset();
        dataset->transferInit();
        status = dataset->read(datasetStream, EXS_LittleEndianExplicit, EGL_noChange, deferredLength);
        dataset->transferEnd();
        if (status.bad()) {
            unreadable(error, status);
            return false;
        }
        if (arrival != nullptr) *arrival = EXS_DeflatedLittleEndianExplicit;
        return true;
    }
    // Everything else: DCMTK reads the whole file (meta included) in one pass.
    DcmInputFileStream again(path);
    file.transferInit();
    status = file.read(again, EXS_Unknown, EGL_noChange, deferredLength);
    file.transferEnd();
    if (status.bad()) {
        unreadable(error, status);
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
bool decompressJPEG2000(DcmFileFormat &file, DcmFileFormat &into, MemoryFiles &files, xd_error *error) {
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
    return parseInto(into, files, reinterpret_cast<const uint8_t *>(text.data()), text.size(), error);
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
    MemoryFiles files;
    DcmFileFormat decompressed;
    if (isJPEG2000(dataset->getOriginalXfer())) {
        if (!decompressJPEG2000(file, decompressed, files, error)) return nullptr;
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
        if (!parseInto(object->file, object->files, bytes, count, error, &object->arrival)) {
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
    E_TransferSyntax xfer = object->arrival != EXS_Unknown ? object->arrival
                                                           : const_cast<xd_object *>(object)->file.getDataset()->getOriginalXfer();
    DcmXfer info(xfer);
    std::snprintf(out, capacity, "%s", xfer == EXS_Unknown ? "" : info.getXferID());
}

uint8_t *xd_write(xd_object *object, size_t *count, xd_error *error) {
    try {
        bool ok = false;
        std::vector<uint8_t> bytes = xd_internal_write(object->file, object->arrival, error, ok);
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
