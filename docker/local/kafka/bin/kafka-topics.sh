#!/bin/sh
# kafka-topics.sh of the local Kafka image: Kafka's TopicCommand, as in the
# official distribution.
exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
  -Dlog4j2.configurationFile=/etc/kafka/docker/log4j2.xml -Dkafka.log.level=WARN \
  -cp '/opt/kafka/libs/*' org.apache.kafka.tools.TopicCommand "$@"
