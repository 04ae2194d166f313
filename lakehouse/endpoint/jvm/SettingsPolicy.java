package sparkify.lakehouse;

import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

import org.apache.hadoop.hive.conf.HiveConf;
import org.apache.spark.sql.SparkSession;

import scala.Tuple2;

/**
 * The one guard for the settings a JDBC session may change: those a client sends when its session opens
 * ({@code set:hiveconf:K}, {@code set:hivevar:K}, {@code set:K}, plain {@code K}) and those a {@code SET K=V}
 * statement changes. It is an allow-list: a few query settings an analyst may need, and variables (names
 * without dots, for {@code ${name}} in queries), which can never be a Spark, Hadoop or Hive setting since
 * all of those have dots. Everything else is refused, whatever its case or prefix: path access
 * ({@code spark.sql.runSQLOnFiles}), catalogs ({@code spark.sql.catalog.*}), Hadoop and S3A settings
 * (the session's settings reach its Hadoop configuration), Java system properties ({@code set:system:}).
 */
public final class SettingsPolicy {

  /** Settings an analyst may change (compared without regard to case). */
  public static final List<String> ANALYST_SETTINGS = Collections.unmodifiableList(Arrays.asList(
      "spark.sql.ansi.enabled",
      "spark.sql.session.timeZone",
      "spark.sql.legacy.timeParserPolicy",
      "spark.sql.shuffle.partitions",
      "spark.sql.adaptive.enabled",
      "spark.sql.autoBroadcastJoinThreshold",
      "spark.sql.variable.substitute",
      "spark.sql.thriftserver.scheduler.pool",
      "spark.sql.thriftServer.incrementalCollect",
      // dbt-spark's insert_overwrite incremental strategy sets it before INSERT OVERWRITE (a sandbox's tables only).
      "spark.sql.sources.partitionOverwriteMode"));

  /** Hive's JDBC driver (beeline) sends its fetch size with every session. */
  private static final String JDBC_FETCH_SIZE = "hive.server2.thrift.resultset.default.fetch.size";

  private static final Set<String> ALLOWED = lowerCase(ANALYST_SETTINGS, JDBC_FETCH_SIZE);

  /**
   * Settings that widen what a session reaches (paths, catalogs, the file systems and their credentials, the
   * metastore). A statement does not run in a session where one of them differs from what the server's new
   * sessions start with, however it was changed. Spark itself changes other settings as a session runs (the
   * output style of binary values, say), so this second guard looks at these only.
   */
  static final List<String> PROTECTED_PREFIXES = Collections.unmodifiableList(Arrays.asList(
      "spark.sql.runsqlonfiles", "spark.sql.catalog.", "spark.sql.catalogimplementation", "spark.sql.extensions",
      "spark.sql.warehouse.dir", "spark.sql.sources.", "spark.sql.hive.", "spark.hadoop.", "spark.driver.",
      "spark.executor.", "spark.jars", "spark.files", "fs.", "hadoop.", "hive.", "javax.jdo.", "datanucleus.",
      "lakehouse."));

  private static final Pattern VARIABLE = Pattern.compile("[A-Za-z_][A-Za-z0-9_]{0,63}");
  private static final Pattern DATABASE = Pattern.compile("[A-Za-z0-9_]{1,128}");
  private static final String[] REFUSED_PREFIXES = {"system:", "env:", "metaconf:"};

  private SettingsPolicy() {
  }

  /** True when a session may change `key` (after `set:`, `hiveconf:` or `hivevar:` are taken off). */
  public static boolean allowed(String key) {
    String name = settingName(key);
    return name != null && (VARIABLE.matcher(name).matches() || ALLOWED.contains(name.toLowerCase(Locale.ROOT)));
  }

  /** The setting a key names: `key` without `set:`, `hiveconf:` or `hivevar:` (any case); null for a
   * `system:`, `env:` or `metaconf:` key, which never names a setting a session may change. */
  static String settingName(String key) {
    String name = key.trim();
    if (name.toLowerCase(Locale.ROOT).startsWith("set:")) {
      name = name.substring(4).trim();
    }
    String lower = name.toLowerCase(Locale.ROOT);
    for (String prefix : REFUSED_PREFIXES) {
      if (lower.startsWith(prefix)) {
        return null;
      }
    }
    if (lower.startsWith("hiveconf:")) {
      return name.substring("hiveconf:".length());
    }
    if (lower.startsWith("hivevar:")) {
      return name.substring("hivevar:".length());
    }
    return name;
  }

  /** Null when a session may open with `conf` (what the client sent); otherwise why not. Names the key,
   * never its value. */
  public static String refusalAtOpen(Map<String, String> conf) {
    if (conf == null) {
      return null;
    }
    for (Map.Entry<String, String> entry : conf.entrySet()) {
      String sent = entry.getKey();
      if (sent == null) {
        continue;
      }
      if (sent.trim().equalsIgnoreCase("use:database")) {
        String database = entry.getValue() == null ? "" : entry.getValue().trim();
        if (!DATABASE.matcher(database).matches()) {
          return "this SQL endpoint refused the session: its database must be a plain name (letters, digits, '_')";
        }
        continue;
      }
      if (!allowed(sent)) {
        String name = settingName(sent);
        return "this SQL endpoint refused the session: a session may not set "
            + (name == null ? "Java system properties or the environment" : name)
            + " (sent as `" + sent.trim() + "` when the session opened); " + whatMayBeSet();
      }
    }
    return null;
  }

  /** Null when `SET key=...` is allowed; otherwise why not. */
  public static String refusalOfSet(String key) {
    if (allowed(key)) {
      return null;
    }
    String name = settingName(key);
    return "this SQL endpoint does not let a session set " + (name == null ? key.trim() : name) + " (SET); " + whatMayBeSet();
  }

  /** The settings a new session of the server has before any client changes one (see {@link #baseline}). */
  private static volatile Map<String, String> baseline = Collections.emptyMap();

  /** Record what a new session of `server` (the trusted session) starts with, before any client connects: its
   * Spark settings, and the Hive settings the server sets as system properties (Hive's session state copies them
   * into every session, and Spark copies them on into the Spark session). */
  public static void baseline(SparkSession server) {
    SparkSession fresh = server.newSession();
    fresh.sessionState().analyzer();  // Delta's extension sets its Parquet field-id settings as the analyzer is built
    Map<String, String> start = new HashMap<>(
        scala.jdk.javaapi.CollectionConverters.asJava(fresh.sessionState().conf().getAllConfs()));
    start.putAll(HiveConf.getConfSystemProperties());
    baseline = Collections.unmodifiableMap(start);
  }

  /**
   * The first protected setting of `session` that differs from what a new session of the server starts with, or
   * null. Every setting a session may change goes through {@link #refusalAtOpen} or
   * {@link #refusalOfSet}; this catches any other way in before the statement runs.
   */
  public static String changedSetting(SparkSession session) {
    Map<String, String> start = baseline;
    scala.collection.Iterator<Tuple2<String, String>> it = session.sessionState().conf().getAllConfs().iterator();
    while (it.hasNext()) {
      Tuple2<String, String> kv = it.next();
      String key = kv._1();
      if (isProtected(key) && !allowed(key) && !kv._2().equals(start.get(key))) {
        return key;
      }
    }
    return null;
  }

  static boolean isProtected(String key) {
    String lower = key.trim().toLowerCase(Locale.ROOT);
    for (String prefix : PROTECTED_PREFIXES) {
      if (lower.startsWith(prefix)) {
        return true;
      }
    }
    return false;
  }

  /** The sentence that tells a client what it may set. */
  public static String whatMayBeSet() {
    return "a session may set " + String.join(", ", ANALYST_SETTINGS)
        + " and variables (names without dots, for ${name} in queries)";
  }

  private static Set<String> lowerCase(List<String> keys, String... more) {
    Set<String> lower = new HashSet<>();
    for (String key : keys) {
      lower.add(key.toLowerCase(Locale.ROOT));
    }
    for (String key : more) {
      lower.add(key.toLowerCase(Locale.ROOT));
    }
    return Collections.unmodifiableSet(lower);
  }
}
