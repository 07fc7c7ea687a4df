import ArgumentParser
import Engine
import Foundation
import KafkaIO
import Stages
import Wire

struct AggregatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregator",
        abstract: "Apply the trainers' gradients from xray.gradients with the optimiser; publish each new version to xray.models.",
        discussion: """
            Instances form a consumer group over xray.gradients; each partition is a parameter \
            shard, owned by one instance. Synchronous (default): one step per barrier over the \
            active trainers (at least --trainers at first; a trainer silent for --barrier-timeout-s \
            is left out), equal to one large batch. Asynchronous: one step per contribution; those \
            more than --max-staleness versions old are dropped and counted. After each step the \
            shard's checkpoint goes to xray.checkpoints, then its part of the new version to \
            xray.models, so a restarted aggregator continues the run where it stopped. The run \
            starts from --base (default: the latest published version) and names its versions \
            RUN-000001, RUN-000002, ... The plateau phase of the schedule watches the evaluator's \
            mean AUC: a rise of less than --plateau-epsilon is no improvement, --plateau-patience \
            evaluations without one cut the rate by --plateau-factor, then --plateau-cooldown \
            evaluations pass before counting again, and the rate never goes below \
            --plateau-floor times --lr (held-out AUC is noisy; a rate cut to nothing stops learning).
            """)

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var stage: StageOptions
    @Option(help: "sync or async.") var mode: String = "sync"
    @Option(help: "Synchronous: trainers the first barrier waits for.") var trainers: Int = 1
    @Option(help: "Synchronous: seconds a barrier waits for a missing trainer.") var barrierTimeoutS: Double = 30
    @Option(help: "Asynchronous: versions a contribution may lag behind before it is dropped.") var maxStaleness: Int = 4
    @Option(help: "The run's name (default: BASE-ft). A new name starts a new run.") var run: String?
    @Option(help: "The published version to start from (default: the latest).") var base: String?
    @Option(help: "adam, adamw or sgd.") var optimizer: String = "adam"
    @Option(help: "Peak learning rate.") var lr: Float = 1e-3
    @Option(help: "Weight decay.") var weightDecay: Float = 1e-4
    @Option(help: "L2-SP: pull the weights toward the run's base with this coefficient (α/2·‖w − w₀‖²), against forgetting what the base knew.")
    var anchorDecay: Float?
    @Option(help: "Warm-up steps (linear from a tenth of --lr).") var warmup: Int = 50
    @Option(help: "warmup-plateau or constant.") var schedule: String = "warmup-plateau"
    @Option(help: "Plateau: factor the rate is cut by.") var plateauFactor: Float = 0.3
    @Option(help: "Plateau: evaluations without improvement before a cut.") var plateauPatience: Int = 4
    @Option(help: "Plateau: the least rise of the mean AUC that counts as an improvement.") var plateauEpsilon: Float = 0.002
    @Option(help: "Plateau: evaluations after a cut before counting again.") var plateauCooldown: Int = 2
    @Option(help: "Plateau: the lowest rate, as a share of --lr.") var plateauFloor: Float = 0.05
    @Option(help: "What trains: all, head, or last:K (must match the trainers').", transform: parseScope)
    var train: TrainableScope = .all

    func validate() throws {
        guard ["sync", "async"].contains(mode) else { throw ValidationError("--mode is sync or async") }
        guard OptimizerKind(rawValue: optimizer) != nil else { throw ValidationError("--optimizer is adam, adamw or sgd") }
        guard ["warmup-plateau", "constant"].contains(schedule) else { throw ValidationError("--schedule is warmup-plateau or constant") }
        guard trainers >= 1, maxStaleness >= 0, (0.001...86_400).contains(barrierTimeoutS), lr > 0, lr <= 1000 else {
            throw ValidationError("--trainers ≥ 1, --max-staleness ≥ 0, --barrier-timeout-s in (0, 86400] and --lr in (0, 1000]")
        }
        guard warmup >= 0, plateauPatience >= 0, plateauCooldown >= 0, plateauFactor > 0, plateauFactor < 1 else {
            throw ValidationError("--warmup, --plateau-patience and --plateau-cooldown must not be negative; --plateau-factor must be in (0, 1)")
        }
        guard (0...1).contains(plateauEpsilon), (0...1).contains(plateauFloor) else {
            throw ValidationError("--plateau-epsilon and --plateau-floor must be in [0, 1]")
        }
        var optimizerSettings = OptimizerSettings(kind: .adam, weightDecay: weightDecay)
        optimizerSettings.anchorDecay = anchorDecay
        if let problem = optimizerSettings.problem {
            throw ValidationError("--weight-decay \(weightDecay), --anchor-decay \(anchorDecay.map { "\($0)" } ?? "none"): \(problem)")
        }
    }

    func run() async throws {
        let logger = kafka.logger("xray.aggregator")
        var settings = AggregatorSettings(topics: kafka.topics)
        settings.groupID = stage.groupID("aggregator", prefix: kafka.topicPrefix)
        settings.base = base
        settings.run = run
        settings.mode = mode == "sync" ? .synchronous(trainers: trainers, barrierTimeout: .milliseconds(Int(barrierTimeoutS * 1000)))
                                       : .asynchronous(maxStaleness: maxStaleness)
        settings.optimizer = OptimizerSettings(kind: OptimizerKind(rawValue: optimizer) ?? .adam, weightDecay: weightDecay)
        settings.optimizer.anchorDecay = anchorDecay
        settings.schedule = schedule == "constant" ? .constant(lr)
            : .warmupPlateau(WarmupPlateau(base: lr, warmupSteps: warmup, factor: plateauFactor, patience: plateauPatience,
                                           epsilon: plateauEpsilon, cooldown: plateauCooldown, minimum: lr * plateauFloor))
        settings.scope = train
        settings.stallAfter = .milliseconds(Int(stage.stallAfterS * 1000))
        let clientKafka = try kafka.kafka(clientID: "xray-aggregator")
        try await stage.run({ [Aggregator(settings: settings, kafka: clientKafka, logger: logger)] }, logger: logger)
    }
}

struct EvaluatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluator",
        abstract: "Score each new trained version on held-out labelled tensors; record its AUC and gate it before triage.",
        discussion: """
            Keeps the newest --window labelled tensors of held-out patients (--validation, the \
            trainers' split) of each site (the xray.site header; images without one count as one \
            more site) from xray.tensors. For the newest trained version (at most one per \
            --interval-s; versions in between are skipped), scores it and the serving version on \
            that window, writes the per-label AUC and accuracy, overall and for each site with \
            --min-site-images, to xray.models.heads as the version's evaluation, and decides: \
            promoted (republished whole, with its figures in the manifest, so scorers switch to \
            it) if its mean AUC is no lower than the serving version's less --mean-margin, no \
            label's AUC drops more than --label-margin and no site's mean AUC more than \
            --site-margin (or that site's own, --site-margin-of SITE=M) below the serving version's \
            nor below the newest published version's (the run's base, so promotions cannot add \
            up to a larger loss); held otherwise, with the \
            reason naming the label or site. A promoted version's urgent labels get the threshold \
            that reaches --sensitivity on the window's positive images, and each site its own on \
            its images (if it has --min-positives of them; otherwise the threshold stays, and the \
            decision says why). Every decision goes to xray.models.heads and the log. `xray model promote` and `xray model rollback` \
            override it.
            """)

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var stage: StageOptions
    @OptionGroup var engine: EngineOptions
    @Option(help: "Share of patients held out (must match the trainers').") var validation: Double = 0.15
    @Option(help: "Held-out images kept (the newest; when full, the site with the most gives up its oldest).") var window: Int = 500
    @Option(help: "Held-out images needed before anything is evaluated.") var minImages: Int = 20
    @Option(help: "Seconds between evaluations.") var intervalS: Double = 10
    @Option(help: "How much lower the candidate's mean AUC may be.") var meanMargin: Double = 0
    @Option(help: "How much any label's AUC may drop.") var labelMargin: Double = 0.02
    @Option(help: "How much any site's mean AUC may drop.") var siteMargin: Double = 0.02
    @Option(help: ArgumentHelp("A site's own margin, as SITE=MARGIN (repeatable).", valueName: "site=margin"))
    var siteMarginOf: [String] = []
    @Option(help: "Held-out images of a site needed for its own figures, gate and thresholds.") var minSiteImages: Int = 20
    @Option(help: "Images scored together.") var batch: Int = 16
    @Option(help: "Sensitivity an urgent label's threshold is chosen for, when a version is promoted.") var sensitivity: Double = 0.95
    @Option(help: "Positive images of a label needed to choose its threshold.") var minPositives: Int = 10

    func validate() throws {
        guard (0..<1).contains(validation), validation > 0 else { throw ValidationError("--validation must be in (0, 1)") }
        guard sensitivity > 0, sensitivity <= 1, minPositives >= 1 else {
            throw ValidationError("--sensitivity must be in (0, 1] and --min-positives at least 1")
        }
        guard window >= 1, minImages >= 1, (0...86_400).contains(intervalS), batch >= 1 else {
            throw ValidationError("--window, --min-images and --batch must be positive; --interval-s in [0, 86400]")
        }
        guard (0...1).contains(meanMargin), (0...1).contains(labelMargin), (0...1).contains(siteMargin) else {
            throw ValidationError("--mean-margin, --label-margin and --site-margin must be in [0, 1]")
        }
        guard minSiteImages >= 1 else { throw ValidationError("--min-site-images must be positive") }
        _ = try siteMargins()
    }

    /// --site-margin-of, parsed.
    func siteMargins() throws -> [String: Double] {
        var margins: [String: Double] = [:]
        for item in siteMarginOf {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let site = ImageMetadata.validSite(parts[0]), let margin = Double(parts[1]), (0...1).contains(margin) else {
                throw ValidationError("--site-margin-of \(item): give SITE=MARGIN, the site in letters, digits, _ and -, the margin in [0, 1]")
            }
            margins[site] = margin
        }
        return margins
    }

    func run() async throws {
        engine.apply()
        let logger = kafka.logger("xray.evaluator")
        var settings = EvaluatorSettings(topics: kafka.topics)
        settings.groupID = stage.groupID("evaluator", prefix: kafka.topicPrefix)
        settings.split = PatientSplit(validationFraction: validation)
        settings.window = window
        settings.minimumImages = minImages
        settings.interval = .milliseconds(Int(intervalS * 1000))
        settings.gate = GatePolicy(meanMargin: meanMargin, labelMargin: labelMargin, siteMargin: siteMargin, siteMargins: try siteMargins())
        settings.minimumSiteImages = minSiteImages
        settings.operatingPoints = OperatingPointChooser(sensitivity: sensitivity, minimumPositives: minPositives)
        settings.batchSize = batch
        settings.stallAfter = .milliseconds(Int(stage.stallAfterS * 1000))
        let clientKafka = try kafka.kafka(clientID: "xray-evaluator")
        try await stage.run({ [Evaluator(settings: settings, kafka: clientKafka, logger: logger)] }, logger: logger)
    }
}
