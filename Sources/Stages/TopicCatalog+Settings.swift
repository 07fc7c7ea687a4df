public import KafkaIO
public import Wire

extension TopicCatalog {
    /// The cluster settings of every topic under this catalog's prefix, for `KafkaAdmin.apply`.
    public var settings: [TopicSettings] {
        TopicCatalog.all.map { TopicSettings(name: name($0), partitions: $0.partitions, configs: $0.configs) }
    }
}
