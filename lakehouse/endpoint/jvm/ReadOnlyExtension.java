package sparkify.lakehouse;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Locale;
import java.util.Set;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.analysis.UnresolvedRelation;
import org.apache.spark.sql.catalyst.expressions.CallMethodViaReflection;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.InsertIntoStatement;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.ScriptTransformation;
import org.apache.spark.sql.catalyst.rules.Rule;
import org.apache.spark.sql.execution.command.SetCommand;

import scala.Function1;
import scala.Option;
import scala.Tuple2;
import scala.runtime.BoxedUnit;

/**
 * A Spark session extension that makes every session but one read-only (the SQL endpoint's rule).
 *
 * <p>A check rule runs on every analysed plan. It refuses any command that is not on a short list of
 * read-only ones (SHOW, DESCRIBE, EXPLAIN, SET, USE, ...): INSERT, DELETE, UPDATE, MERGE, DROP,
 * CREATE, ALTER, TRUNCATE, RESTORE, OPTIMIZE, VACUUM, CACHE, ADD JAR, path writes and whatever a later
 * Spark or Delta adds are commands, so they are refused by default. Queries that reach outside Spark are
 * refused too: TRANSFORM scripts (they run a shell command) and reflect/java_method. SET may not turn
 * path access back on (spark.sql.runSQLOnFiles) or register catalogs.
 *
 * <p>The session given to {@link #trust} (the server's own, which registers the tables) is exempt.
 */
public final class ReadOnlyExtension implements Function1<SparkSessionExtensions, BoxedUnit> {

  private static volatile Object trusted;

  private static final Set<String> ALLOWED = new HashSet<>(Arrays.asList(
      "SetCommand", "ResetCommand", "SetCatalogAndNamespace", "SetNamespaceCommand", "SetCatalogCommand",
      "RefreshTableCommand"));
  private static final String[] ALLOWED_PREFIXES = {"Show", "Describe", "Explain"};
  private static final Set<String> FILE_FORMATS = new HashSet<>(Arrays.asList(
      "delta", "parquet", "orc", "json", "csv", "text", "avro", "binaryfile"));
  private static final String[] PROTECTED_SETTINGS = {"spark.sql.runsqlonfiles", "spark.sql.catalog.", "spark.sql.extensions"};

  /** Exempt `session` (the server's own) from the rule. */
  public static void trust(Object session) {
    trusted = session;
  }

  @Override
  public BoxedUnit apply(SparkSessionExtensions extensions) {
    Function1<SparkSession, Function1<LogicalPlan, BoxedUnit>> builder = session -> plan -> {
      if (session != trusted) {
        check(plan);
      }
      return BoxedUnit.UNIT;
    };
    extensions.injectCheckRule(builder);
    // With path access off, `delta.`/path`` would only be "table not found": say why instead.
    Function1<SparkSession, Rule<LogicalPlan>> paths = session -> new PathAccessRule(session);
    extensions.injectResolutionRule(paths);
    return BoxedUnit.UNIT;
  }

  /** Refuses `format.`/path`` tables (reads and writes) in untrusted sessions with a clear message. */
  static final class PathAccessRule extends Rule<LogicalPlan> {
    private final SparkSession session;

    PathAccessRule(SparkSession session) {
      this.session = session;
    }

    @Override
    public LogicalPlan apply(LogicalPlan plan) {
      if (session != trusted) {
        refusePaths(plan);
      }
      return plan;
    }

    private static void refusePaths(LogicalPlan plan) {
      plan.foreachWithSubqueries(node -> {
        if (node instanceof InsertIntoStatement) {  // its target table is not a child
          refusePaths(((InsertIntoStatement) node).table());
        }
        if (node instanceof UnresolvedRelation) {
          scala.collection.immutable.Seq<String> parts = ((UnresolvedRelation) node).multipartIdentifier();
          if (parts.size() == 2 && FILE_FORMATS.contains(parts.apply(0).toLowerCase(Locale.ROOT))) {
            String path = parts.apply(1);
            if (path.startsWith("/") || path.contains(":/")) {
              throw new ReadOnlyException("this SQL endpoint serves the registered tables only: path access ("
                  + parts.apply(0) + ".`" + path + "`) is off; use the table's name, e.g. gold.songplays");
            }
          }
        }
        return BoxedUnit.UNIT;
      });
    }
  }

  /** Throws ReadOnlyException when `plan` would change anything. */
  static void check(LogicalPlan plan) {
    plan.foreachWithSubqueries(node -> {
      String refused = refusal(node);
      if (refused != null) {
        throw new ReadOnlyException("this SQL endpoint is read-only: " + refused
            + " is not allowed (the lakehouse jobs own the tables; SELECT, SHOW, DESCRIBE and time travel work)");
      }
      return BoxedUnit.UNIT;
    });
  }

  private static String refusal(LogicalPlan node) {
    String name = node.getClass().getSimpleName();
    if (node instanceof ScriptTransformation) {
      return "TRANSFORM ... USING (runs a program)";
    }
    if (node instanceof SetCommand) {
      Option<Tuple2<String, Option<String>>> kv = ((SetCommand) node).kv();
      if (kv.isDefined() && kv.get()._2().isDefined()) {
        String key = kv.get()._1().trim().toLowerCase(Locale.ROOT);
        for (String p : PROTECTED_SETTINGS) {
          if (key.startsWith(p)) {
            return "SET " + kv.get()._1().trim();
          }
        }
      }
      return null;
    }
    if (node instanceof Command && !allowedCommand(name)) {
      return describe(name);
    }
    scala.collection.Iterator<Expression> it = node.expressions().iterator();
    while (it.hasNext()) {
      if (it.next().find(e -> e instanceof CallMethodViaReflection).isDefined()) {
        return "reflect/java_method";
      }
    }
    return null;
  }

  private static boolean allowedCommand(String name) {
    if (ALLOWED.contains(name)) {
      return true;
    }
    for (String p : ALLOWED_PREFIXES) {
      if (name.startsWith(p)) {
        return true;
      }
    }
    return false;
  }

  /** "DropTableCommand" -> "DROP TABLE (DropTableCommand)". */
  private static String describe(String name) {
    String base = name.replaceAll("(Command|Statement|Exec)$", "").replaceAll("^Delta", "");
    String words = base.replaceAll("([a-z0-9])([A-Z])", "$1 $2").toUpperCase(Locale.ROOT);
    return words + " (" + name + ")";
  }

  /** The error a refused statement gets. */
  public static final class ReadOnlyException extends SecurityException {
    private static final long serialVersionUID = 1L;

    ReadOnlyException(String message) {
      super(message);
    }
  }
}
