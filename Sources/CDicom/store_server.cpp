// The C-STORE and Verification service provider: DCMTK's DcmSCP, handing each received object
// to the caller's handler and answering with the status the handler returns.
#include "CDicom.h"
#include "internal.h"

#include <atomic>
#include <string>
#include <vector>

#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/diutil.h"
#include "dcmtk/dcmnet/scp.h"

struct xd_store_server : public DcmSCP {
    std::vector<std::string> callers;
    xd_store_handler handler = nullptr;
    void *context = nullptr;
    std::atomic<bool> stopping{false};

    OFBool checkCallingAETitleAccepted(const OFString &callingAE) override {
        if (callers.empty()) return OFTrue;
        for (const auto &caller : callers)
            if (caller == callingAE.c_str()) return OFTrue;
        return OFFalse;
    }

    OFBool stopAfterConnectionTimeout() override { return stopping.load(); }
    OFBool stopAfterCurrentAssociation() override { return stopping.load(); }

    OFCondition handleIncomingCommand(T_DIMSE_Message *message, const DcmPresentationContextInfo &context_info) override {
        if (message->CommandField != DIMSE_C_STORE_RQ) return DcmSCP::handleIncomingCommand(message, context_info);
        T_DIMSE_C_StoreRQ &request = message->msg.CStoreRQ;
        DcmDataset *dataset = nullptr;
        OFCondition status = receiveSTORERequest(request, context_info.presentationContextID, dataset);
        if (status.bad()) {
            delete dataset;
            return status;
        }
        Uint16 answer = STATUS_STORE_Error_CannotUnderstand;
        if (dataset != nullptr) {
            try {
                DcmFileFormat file(dataset);
                DcmXfer xfer(context_info.acceptedTransferSyntax.c_str());
                bool ok = false;
                std::vector<uint8_t> bytes = xd_internal_write(file, xfer.getXfer(), nullptr, ok);
                if (ok) answer = handler(context, getPeerAETitle().c_str(), getPeerIP().c_str(), bytes.data(), bytes.size());
            } catch (...) {
                answer = STATUS_STORE_Refused_OutOfResources;
            }
        }
        delete dataset;
        return sendSTOREResponse(context_info.presentationContextID, request, answer);
    }
};

extern "C" {

xd_store_server *xd_store_server_create(const char *ae_title, uint16_t port, const char *const *callers,
                                        size_t caller_count, uint32_t max_pdu, xd_store_handler handler,
                                        void *context, xd_error *error) {
    try {
        xd_internal_set_up();
        auto *server = new xd_store_server();
        for (size_t i = 0; i < caller_count; i++) server->callers.emplace_back(callers[i]);
        server->handler = handler;
        server->context = context;
        DcmSCPConfig &config = server->getConfig();
        config.setAETitle(ae_title);
        config.setPort(port);
        config.setMaxReceivePDULength(max_pdu);
        config.setHostLookupEnabled(OFFalse);
        // Non-blocking with a one-second timeout, so that a stop is noticed between associations.
        config.setConnectionBlockingMode(DUL_NOBLOCK);
        config.setConnectionTimeout(1);
        config.setDIMSETimeout(60);
        config.setACSETimeout(30);
        OFList<OFString> syntaxes;
        for (const char *uid : {UID_JPEG2000LosslessOnlyTransferSyntax, UID_JPEG2000TransferSyntax,
                                UID_JPEGLSLosslessTransferSyntax, UID_JPEGLSLossyTransferSyntax,
                                UID_JPEGProcess14SV1TransferSyntax, UID_JPEGProcess14TransferSyntax,
                                UID_JPEGProcess1TransferSyntax, UID_JPEGProcess2_4TransferSyntax,
                                UID_RLELosslessTransferSyntax, UID_DeflatedExplicitVRLittleEndianTransferSyntax,
                                UID_LittleEndianExplicitTransferSyntax, UID_BigEndianExplicitTransferSyntax,
                                UID_LittleEndianImplicitTransferSyntax})
            syntaxes.push_back(uid);
        OFCondition status = EC_Normal;
        // The storage SOP classes storescu proposes (DCMTK's long list: within the 128 contexts an
        // association may hold, and every radiography, CT, MR, US and secondary-capture class).
        for (int i = 0; i < numberOfDcmLongSCUStorageSOPClassUIDs && status.good(); i++)
            status = config.addPresentationContext(dcmLongSCUStorageSOPClassUIDs[i], syntaxes);
        OFList<OFString> verification;
        verification.push_back(UID_LittleEndianExplicitTransferSyntax);
        verification.push_back(UID_LittleEndianImplicitTransferSyntax);
        if (status.good()) status = config.addPresentationContext(UID_VerificationSOPClass, verification);
        if (status.good()) status = server->openListenPort();
        if (status.bad()) {
            xd_internal_fail(error, "cannot listen for DICOM on port " + std::to_string(port) + ": " + status.text());
            delete server;
            return nullptr;
        }
        return server;
    } catch (...) {
        xd_internal_fail(error, "DICOM library error starting the C-STORE service");
        return nullptr;
    }
}

int xd_store_server_run(xd_store_server *server, xd_error *error) {
    try {
        OFCondition status = server->acceptAssociations();
        if (server->stopping.load()) return 0;
        xd_internal_fail(error, std::string("the DICOM service stopped: ") + status.text());
    } catch (...) {
        xd_internal_fail(error, "DICOM library error in the C-STORE service");
    }
    return -1;
}

void xd_store_server_stop(xd_store_server *server) { server->stopping.store(true); }

void xd_store_server_free(xd_store_server *server) { delete server; }

}  // extern "C"
