#!/usr/bin/env python3
"""DICOM test objects made from real chest X-rays, and the grey levels they should render to.

Usage: make_dicom.py OUT_DIR

From one NIH ChestX-ray14 PNG and one Kermany JPEG (../shared/datasets) it writes CR/DX objects
with made-up patient data (pydicom), in several bit depths, photometric interpretations and
grey-level settings, then DCMTK (dcmcjpeg, dcmcjpls, dcmcrle, dcmconv) and GDCM (gdcmconv)
re-encode them in the other transfer syntaxes. For every object, `NAME.expected.u8` holds the
8-bit image a viewer shows, computed here with numpy from the uncompressed pixels by the
formulas of DICOM PS3.3 C.11 (modality rescale, VOI LUT or linear window, MONOCHROME1
inversion) — independently of DCMTK, which the decoder under test uses. `manifest.json` lists
each object: file, expected file, size, whether it was lossy, what the decoder should refuse.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (CTImageStorage, ComputedRadiographyImageStorage, DigitalXRayImageStorageForPresentation,
                         ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid)

HERE = os.path.dirname(os.path.abspath(__file__))
DATASETS = os.path.normpath(os.path.join(HERE, "../../../../shared/datasets"))
SIDE = int(os.environ.get("XRAY_DICOM_SIDE", "256"))  # small objects keep the tests fast; the real samples cover full size

# Made-up identifiers: the gateway test checks that none of these reaches any topic.
PATIENTS = [
    {"name": "DOE^JANE^Q", "id": "MRN-4471-0923", "birth": "19580214", "accession": "ACC-88120931",
     "address": "12 Harbour Lane, Portsmouth", "institution": "St Example General Hospital",
     "physician": "HOUSE^GREGORY", "study_uid": generate_uid(), "other_ids": "NHS-943-476-5919"},
    {"name": "ROE^RICHARD", "id": "MRN-5523-1177", "birth": "19910730", "accession": "ACC-88120977",
     "address": "4 Mill Road, Cambridge", "institution": "St Example General Hospital",
     "physician": "QUINN^MICHAELA", "study_uid": generate_uid(), "other_ids": "NHS-401-023-2231"},
]


def source_images():
    nih_dir = os.path.join(DATASETS, "nih_cxr14_fullres_starter_subset/images")
    nih = sorted(f for f in os.listdir(nih_dir) if f.endswith(".png"))[0]
    kermany_dir = os.path.join(DATASETS, "kermany_pneumonia_224/train/PNEUMONIA")
    kermany = sorted(f for f in os.listdir(kermany_dir) if f.lower().endswith((".jpeg", ".jpg", ".png")))[0]
    out = []
    for path in (os.path.join(nih_dir, nih), os.path.join(kermany_dir, kermany)):
        image = Image.open(path).convert("L").resize((SIDE, SIDE), Image.BILINEAR)
        out.append(np.asarray(image, dtype=np.float64) / 255.0)
    return out


def dataset(patient, modality, sop_class, view, body_part, series_number, instance_number):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "CR_ROOM_3"
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate, ds.StudyTime = "20261130", "101500"
    ds.AcquisitionDate, ds.AcquisitionTime = "20261130", "101642.25"
    ds.ContentDate, ds.ContentTime = "20261130", "101650"
    ds.AccessionNumber = patient["accession"]
    ds.Modality = modality
    ds.InstitutionName = patient["institution"]
    ds.InstitutionAddress = patient["address"]
    ds.ReferringPhysicianName = patient["physician"]
    ds.StationName = "CRROOM3"
    ds.StudyDescription = "CHEST PA AND LATERAL for " + patient["name"]
    ds.PatientName = patient["name"]
    ds.PatientID = patient["id"]
    ds.OtherPatientIDs = patient["other_ids"]
    ds.PatientBirthDate = patient["birth"]
    ds.PatientSex = "F"
    ds.PatientAddress = patient["address"]
    ds.ImageComments = "Patient " + patient["name"] + " MRN " + patient["id"] + " short of breath"
    ds.BodyPartExamined = body_part
    ds.ViewPosition = view
    ds.StudyInstanceUID = patient["study_uid"]
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyID = "S" + patient["accession"][-4:]
    ds.SeriesNumber, ds.InstanceNumber = series_number, instance_number
    ds.PatientOrientation = ["P", "F"]
    ds.add_new((0x0029, 0x0010), "LO", "EXAMPLE VENDOR")
    ds.add_new((0x0029, 0x1001), "LO", patient["name"])  # a private tag carrying the name
    ds.BurnedInAnnotation = "NO"
    return ds


def window(values, centre, width):
    """PS3.3 C.11.2.1.2.1, linear, to 0..255."""
    lo, hi = centre - 0.5 - (width - 1) / 2, centre - 0.5 + (width - 1) / 2
    y = ((values - (centre - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.where(values <= lo, 0.0, np.where(values > hi, 255.0, y))


def set_pixels(ds, stored, bits_stored, signed, photometric):
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 8 if bits_stored <= 8 else 16
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    dtype = {(8, False): np.uint8, (16, False): np.uint16, (16, True): np.int16}[(ds.BitsAllocated, signed)]
    ds.PixelData = stored.astype(dtype).tobytes()


def main(out):
    os.makedirs(out, exist_ok=True)
    nih, kermany = source_images()
    entries = []

    def save(name, ds, expected, transfer=ExplicitVRLittleEndian, note=""):
        ds.file_meta.TransferSyntaxUID = transfer
        path = os.path.join(out, name + ".dcm")
        ds.save_as(path, enforce_file_format=True)
        np.clip(np.rint(expected), 0, 255).astype(np.uint8).tofile(os.path.join(out, name + ".expected.u8"))
        entries.append({"name": name, "file": name + ".dcm", "expected": name + ".expected.u8",
                        "width": int(ds.Columns), "height": int(ds.Rows), "lossy": False, "note": note})
        return path

    p0, p1 = PATIENTS
    # 12 bits stored in 16, MONOCHROME2, a window: the common CR case.
    ds = dataset(p0, "CR", ComputedRadiographyImageStorage, "PA", "CHEST", 1, 1)
    stored = np.rint(nih * 3000 + 500)
    set_pixels(ds, stored, 12, False, "MONOCHROME2")
    ds.WindowCenter, ds.WindowWidth = 2000, 2400
    base12 = save("cr-12bit-mono2-window", ds, window(stored, 2000, 2400), note="12 bits, window")

    # 12 bits, MONOCHROME1 (inverted), no window: the full range of the image.
    ds = dataset(p0, "CR", ComputedRadiographyImageStorage, "AP", "CHEST", 1, 2)
    stored = np.rint((1 - kermany) * 4000 + 40)
    set_pixels(ds, stored, 12, False, "MONOCHROME1")
    expected = 255 - (stored - stored.min()) / (stored.max() - stored.min()) * 255
    mono1 = save("cr-12bit-mono1-minmax", ds, expected, transfer=ImplicitVRLittleEndian, note="MONOCHROME1, min-max")

    # 16 bits signed with a rescale, the window in rescaled units: a DX detector.
    ds = dataset(p1, "DX", DigitalXRayImageStorageForPresentation, "PA", "CHEST", 2, 1)
    stored = np.rint(nih * 20000 - 8000)
    set_pixels(ds, stored, 16, True, "MONOCHROME2")
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 0.5, 1000, "US"
    ds.WindowCenter, ds.WindowWidth = 1500, 6000
    base16 = save("dx-16bit-signed-rescale", ds, window(stored * 0.5 + 1000, 1500, 6000), note="signed, rescale, window")

    # A VOI LUT (a gamma table) takes precedence over a window that is also present.
    ds = dataset(p1, "DX", DigitalXRayImageStorageForPresentation, "PA", "CHEST", 2, 2)
    stored = np.rint(kermany * 4095)
    set_pixels(ds, stored, 12, False, "MONOCHROME2")
    ds.WindowCenter, ds.WindowWidth = 100, 200  # would make it nearly white; the LUT wins
    table = np.rint(((np.arange(4096) / 4095.0) ** 0.6) * 65535).astype(np.uint16)
    item = pydicom.Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTExplanation = "gamma 0.6"
    item.add_new((0x0028, 0x3006), "US", table.tolist())
    ds.VOILUTSequence = Sequence([item])
    save("dx-12bit-voi-lut", ds, table[stored.astype(np.int64)] / 65535.0 * 255, note="VOI LUT")

    # 8 bits, no window.
    ds = dataset(p0, "CR", ComputedRadiographyImageStorage, "PA", "CHEST", 1, 3)
    stored = np.rint(kermany * 255)
    set_pixels(ds, stored, 8, False, "MONOCHROME2")
    base8 = save("cr-8bit-mono2", ds, (stored - stored.min()) / (stored.max() - stored.min()) * 255, note="8 bits")

    def reencode(base, name, command, lossy=False):
        src = next(e for e in entries if e["file"] == os.path.basename(base))
        path = os.path.join(out, name + ".dcm")
        subprocess.run(command + [base, path], check=True, capture_output=True)
        entries.append(dict(src, name=name, file=name + ".dcm", lossy=lossy, note=src["note"] + ", " + " ".join(command)))

    reencode(base12, "cr-12bit-jpeg-lossless-sv1", ["dcmcjpeg", "+e1"])
    reencode(base12, "cr-12bit-jpeg-lossless", ["dcmcjpeg", "+el"])
    reencode(base12, "cr-12bit-jpeg-extended", ["dcmcjpeg", "+ee", "+q", "95"], lossy=True)
    reencode(base12, "cr-12bit-jpeg-ls", ["dcmcjpls", "+el"])
    reencode(mono1, "cr-12bit-mono1-rle", ["dcmcrle"])
    reencode(base16, "dx-16bit-rle", ["dcmcrle"])
    reencode(base12, "cr-12bit-deflated", ["dcmconv", "+td"])
    reencode(base12, "cr-12bit-jpeg2000", ["gdcmconv", "--j2k"])
    reencode(base8, "cr-8bit-jpeg-baseline", ["dcmcjpeg", "+eb", "+q", "95"], lossy=True)

    # What the decoder must refuse, and the gateway's filter must not publish.
    refused = []
    ds = dataset(p0, "CR", ComputedRadiographyImageStorage, "PA", "CHEST", 1, 9)
    set_pixels(ds, np.rint(np.concatenate([nih, nih]) * 255), 8, False, "MONOCHROME2")
    ds.Rows, ds.NumberOfFrames = SIDE, 2
    ds.save_as(os.path.join(out, "refuse-multi-frame.dcm"), enforce_file_format=True)
    refused.append({"file": "refuse-multi-frame.dcm", "reason": "not-a-radiograph", "says": "multi-frame"})
    ds = dataset(p0, "CR", ComputedRadiographyImageStorage, "PA", "CHEST", 1, 10)  # a report without pixels
    ds.save_as(os.path.join(out, "refuse-no-pixels.dcm"), enforce_file_format=True)
    refused.append({"file": "refuse-no-pixels.dcm", "reason": "not-a-radiograph", "says": "no Pixel Data"})
    data = open(base12, "rb").read()
    open(os.path.join(out, "refuse-truncated.dcm"), "wb").write(data[: len(data) // 2])
    refused.append({"file": "refuse-truncated.dcm", "reason": "corrupt", "says": "not a readable DICOM object"})
    lying = bytearray(data)
    at = lying.rfind(b"\xe0\x7f\x10\x00")  # the pixel data element's length says 2 GB
    lying[at + 8: at + 12] = (0x7FFFFFF0).to_bytes(4, "little")
    open(os.path.join(out, "refuse-length-lies.dcm"), "wb").write(bytes(lying))
    refused.append({"file": "refuse-length-lies.dcm", "reason": "corrupt", "says": "not a readable DICOM object"})

    # Objects a chest-X-ray gateway acknowledges but does not publish.
    ds = dataset(p0, "CT", CTImageStorage, "", "CHEST", 5, 1)
    set_pixels(ds, np.rint(nih * 2000), 12, False, "MONOCHROME2")
    ds.save_as(os.path.join(out, "skip-ct.dcm"), enforce_file_format=True)
    ds = dataset(p0, "CR", ComputedRadiographyImageStorage, "LL", "CHEST", 1, 4)
    set_pixels(ds, np.rint(nih * 3000), 12, False, "MONOCHROME2")
    ds.save_as(os.path.join(out, "skip-lateral.dcm"), enforce_file_format=True)
    ds = dataset(p1, "DX", DigitalXRayImageStorageForPresentation, "PA", "CHEST", 2, 3)
    set_pixels(ds, np.rint(kermany * 255), 8, False, "MONOCHROME2")
    ds.BurnedInAnnotation = "YES"
    ds.save_as(os.path.join(out, "skip-burned-in.dcm"), enforce_file_format=True)

    json.dump({"images": entries, "refused": refused,
               "skipped": [{"file": "skip-ct.dcm", "says": "modality CT"},
                           {"file": "skip-lateral.dcm", "says": "view position LL"},
                           {"file": "skip-burned-in.dcm", "says": "burned-in"}],
               "identifiers": sorted({v for p in PATIENTS for k, v in p.items() if k != "study_uid"}
                                     | {p["study_uid"] for p in PATIENTS})},
              open(os.path.join(out, "manifest.json"), "w"), indent=1)
    print(f"{len(entries)} images, {len(refused)} to refuse, 3 to skip in {out}")


if __name__ == "__main__":
    main(sys.argv[1])
