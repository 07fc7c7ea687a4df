/// The 14 ChestX-ray14 findings, in NIH order. "No Finding" is all zeros.
public enum Findings {
    public static let nih14 = [
        "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
        "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
    ]
    /// The name NIH uses for an image without findings.
    public static let noFinding = "No Finding"
}
