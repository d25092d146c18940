"""The notifications subscriber: CloudEvents from the Kafka-class Broker over HTTP."""
