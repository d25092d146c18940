// Reads one Kafka record and decodes it the way the KafkaSource dispatcher does: with the CloudEvents Java SDK's
// Kafka deserializer (eventing-kafka-broker CloudEventDeserializer wraps the record as dev.knative.kafka.event
// only when this throws). Prints one JSON line: the CloudEvent's attributes, extensions and data, or the error.
//
//   java -cp '.cache/kafka/libs-*/*' hack/kafka/CeDecode.java BOOTSTRAP TOPIC PARTITION OFFSET
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cloudevents.CloudEvent;
import io.cloudevents.kafka.CloudEventDeserializer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

public class CeDecode {
    public static void main(String[] args) throws Exception {
        TopicPartition tp = new TopicPartition(args[1], Integer.parseInt(args[2]));
        long offset = Long.parseLong(args[3]);
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        ObjectMapper json = new ObjectMapper();
        ObjectNode out = json.createObjectNode();
        try (KafkaConsumer<String, byte[]> consumer =
                new KafkaConsumer<>(props, new StringDeserializer(), new ByteArrayDeserializer())) {
            consumer.assign(List.of(tp));
            consumer.seek(tp, offset);
            long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
            while (System.nanoTime() < deadline) {
                for (ConsumerRecord<String, byte[]> rec : consumer.poll(Duration.ofMillis(500))) {
                    if (rec.offset() != offset) continue;
                    out.put("key", rec.key());
                    try (CloudEventDeserializer ce = new CloudEventDeserializer()) {
                        ce.configure(Map.of(), false);
                        CloudEvent event = ce.deserialize(rec.topic(), rec.headers(), rec.value());
                        ObjectNode attrs = out.putObject("attributes");
                        for (String name : event.getAttributeNames()) {
                            attrs.put(name, String.valueOf(event.getAttribute(name)));
                        }
                        ObjectNode ext = out.putObject("extensions");
                        for (String name : event.getExtensionNames()) {
                            ext.put(name, String.valueOf(event.getExtension(name)));
                        }
                        if (event.getData() != null) {
                            out.put("data", new String(event.getData().toBytes(), StandardCharsets.UTF_8));
                        }
                    } catch (RuntimeException e) {
                        out.put("error", e.getClass().getSimpleName() + ": " + e.getMessage());
                    }
                    System.out.println(json.writeValueAsString(out));
                    return;
                }
            }
        }
        System.err.println("no record at " + tp + "@" + offset);
        System.exit(3);
    }
}
