// Creates several topics (replication factor 1) in one JVM with Kafka's own
// Admin client, then waits until every partition has a leader, so that a
// producer started right after sees the topic. Existing topics are left alone
// (like TopicCommand --if-not-exists).
//
// Compiled and run by scripts/kafka-local.sh against the cached Kafka jars:
//   java -cp 'libs/*:helper' CreateTopics BOOTSTRAP NAME:PARTITIONS...
// Exit status: 0 all topics exist with a leader per partition, 1 failure,
// 2 usage error.
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

public final class CreateTopics {
    private static final long TIMEOUT_MS = 60_000;

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: CreateTopics BOOTSTRAP NAME:PARTITIONS...");
            System.exit(2);
        }
        Map<String, Integer> wanted = new LinkedHashMap<>();
        for (int i = 1; i < args.length; i++) {
            int colon = args[i].lastIndexOf(':');
            String name = colon < 0 ? args[i] : args[i].substring(0, colon);
            int partitions;
            try {
                partitions = colon < 0 ? 1 : Integer.parseInt(args[i].substring(colon + 1));
            } catch (NumberFormatException e) {
                partitions = -1;
            }
            if (name.isEmpty() || partitions < 1) {
                System.err.println("CreateTopics: bad topic spec '" + args[i] + "' (want NAME:PARTITIONS, PARTITIONS >= 1)");
                System.exit(2);
            }
            wanted.put(name, partitions);
        }

        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "kafka-local-create-topics");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");

        int failures = 0;
        try (Admin admin = Admin.create(props)) {
            List<NewTopic> topics = new ArrayList<>();
            wanted.forEach((name, p) -> topics.add(new NewTopic(name, p, (short) 1)));
            CreateTopicsResult created = admin.createTopics(topics);
            for (Map.Entry<String, Integer> e : wanted.entrySet()) {
                String name = e.getKey();
                try {
                    created.values().get(name).get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    System.out.println("created topic " + name + " (" + e.getValue() + " partitions)");
                } catch (ExecutionException ex) {
                    if (ex.getCause() instanceof TopicExistsException) {
                        System.out.println("topic " + name + " already exists");
                    } else {
                        System.err.println("CreateTopics: cannot create " + name + ": " + ex.getCause());
                        failures++;
                    }
                }
            }
            if (failures == 0) {
                failures += awaitLeaders(admin, wanted);
            }
        }
        System.exit(failures == 0 ? 0 : 1);
    }

    // Polls the broker until every partition of every topic has a leader.
    private static int awaitLeaders(Admin admin, Map<String, Integer> wanted) throws Exception {
        long deadline = System.currentTimeMillis() + TIMEOUT_MS;
        String lastProblem = "";
        boolean warned = false;
        while (true) {
            lastProblem = "";
            try {
                Map<String, TopicDescription> all =
                    admin.describeTopics(wanted.keySet()).allTopicNames().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                for (Map.Entry<String, Integer> e : wanted.entrySet()) {
                    TopicDescription d = all.get(e.getKey());
                    int have = d.partitions().size();
                    if (have != e.getValue() && !warned) {
                        System.err.println("CreateTopics: warning: topic " + e.getKey() + " has " + have
                            + " partitions, not " + e.getValue() + " (it existed before)");
                    }
                    for (TopicPartitionInfo p : d.partitions()) {
                        if (p.leader() == null || p.leader().isEmpty()) {
                            lastProblem = e.getKey() + "-" + p.partition() + " has no leader";
                        }
                    }
                }
                warned = true;
            } catch (ExecutionException ex) {
                if (!(ex.getCause() instanceof UnknownTopicOrPartitionException)) {
                    throw ex;
                }
                lastProblem = ex.getCause().getMessage();
            }
            if (lastProblem.isEmpty()) {
                return 0;
            }
            if (System.currentTimeMillis() > deadline) {
                System.err.println("CreateTopics: timed out waiting for partition leaders: " + lastProblem);
                return 1;
            }
            Thread.sleep(100);
        }
    }
}
