package sparkify.lakehouse;

import java.net.URI;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.analysis.UnresolvedRelation;
import org.apache.spark.sql.catalyst.catalog.SessionCatalog;
import org.apache.spark.sql.catalyst.expressions.CallMethodViaReflection;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.InsertIntoStatement;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.ScriptTransformation;
import org.apache.spark.sql.catalyst.rules.Rule;
import org.apache.spark.sql.execution.command.SetCommand;
import org.apache.spark.sql.execution.datasources.HadoopFsRelation;
import org.apache.spark.sql.execution.datasources.LogicalRelation;
import org.apache.spark.sql.execution.datasources.v2.DataSourceV2Relation;
import org.apache.spark.sql.sources.BaseRelation;

import scala.Function1;
import scala.Option;
import scala.Tuple2;
import scala.runtime.BoxedUnit;

/**
 * The SQL endpoint's rules, as a Spark session extension: every session but the server's own runs under them.
 *
 * <p>A check rule runs on every analysed plan. Writes go through {@link WritePolicy} (the lakehouse's schemas
 * read-only, the analysts' sandboxes writable by their users, everything else refused). Queries that reach outside
 * Spark are refused in every session: TRANSFORM scripts (they run a shell command) and reflect/java_method. SET may
 * change only what {@link SettingsPolicy} allows, and a statement does not run in a session whose settings differ
 * from the server's where no session may change them (the guard behind the one at session open).
 *
 * <p>Files are reached through catalog tables only: the rule refuses a plan that reads a file relation with no
 * catalog table behind it (`text.`/path``, `delta.`/path``, table_changes_by_path, ...) unless it is a catalog
 * table's own location. That holds whatever spark.sql.runSQLOnFiles says.
 *
 * <p>The session given to {@link #trust} (the server's own, which registers the tables) is exempt.
 */
public final class EndpointExtension implements Function1<SparkSessionExtensions, BoxedUnit> {

  private static volatile Object trusted;

  private static final Set<String> FILE_FORMATS = new HashSet<>(Arrays.asList(
      "delta", "parquet", "orc", "json", "csv", "text", "avro", "binaryfile"));

  /** Exempt `session` (the server's own) from the rule. */
  public static void trust(Object session) {
    trusted = session;
  }

  @Override
  public BoxedUnit apply(SparkSessionExtensions extensions) {
    Function1<SparkSession, Function1<LogicalPlan, BoxedUnit>> builder = session -> plan -> {
      if (session != trusted) {
        check(session, plan);
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
              throw new Refused("this SQL endpoint serves the registered tables only: path access ("
                  + parts.apply(0) + ".`" + path + "`) is off; use the table's name, e.g. gold.songplays");
            }
          }
        }
        return BoxedUnit.UNIT;
      });
    }
  }

  /** Throws Refused when `plan` would write what the session's user may not, read a path, reach outside Spark, or
   * run with a protected setting changed. */
  static void check(SparkSession session, LogicalPlan plan) {
    String changed = SettingsPolicy.changedSetting(session);
    if (changed != null) {
      throw new Refused("this SQL endpoint does not run statements in a session that changed " + changed
          + "; " + SettingsPolicy.whatMayBeSet());
    }
    visit(plan, node -> {
      String path = pathRead(session, node);
      if (path != null) {
        throw new Refused("this SQL endpoint serves the registered tables only: " + path
            + " is not allowed; use a table's name, e.g. gold.songplays (and table_changes('gold.songplays', N) for changes)");
      }
      if (node instanceof SetCommand) {
        Option<Tuple2<String, Option<String>>> kv = ((SetCommand) node).kv();
        String set = kv.isDefined() && kv.get()._2().isDefined() ? SettingsPolicy.refusalOfSet(kv.get()._1()) : null;
        if (set != null) {
          throw new Refused(set);
        }
        return;
      }
      String outside = outsideSpark(node);
      if (outside != null) {
        throw new Refused("this SQL endpoint refused " + outside + ": a query may not reach outside Spark; "
            + WritePolicy.mayWrite(WritePolicy.user()));
      }
      if (node instanceof Command) {
        String refused = WritePolicy.refusal(session, node);
        if (refused != null) {
          throw new Refused(refused);
        }
      }
    });
  }

  /**
   * Every node of `plan`: its children and subqueries, and the plans a command holds outside its children (the query
   * of CREATE TABLE … AS SELECT or of a view, MERGE's source, CLONE inside CREATE TABLE). Read-only commands
   * (EXPLAIN, DESCRIBE) run nothing they hold.
   */
  static void visit(LogicalPlan plan, java.util.function.Consumer<LogicalPlan> visitor) {
    plan.foreachWithSubqueries(node -> {
      visitor.accept(node);
      if (node instanceof Command && !WritePolicy.readOnly(node.getClass().getSimpleName())) {
        scala.collection.Iterator<Object> fields = node.productIterator();
        while (fields.hasNext()) {
          Object field = fields.next();
          if (field instanceof Option && ((Option<?>) field).isDefined()) {
            field = ((Option<?>) field).get();
          }
          if (field instanceof LogicalPlan && !node.children().contains(field)) {
            visit((LogicalPlan) field, visitor);
          }
        }
      }
      return BoxedUnit.UNIT;
    });
  }

  /**
   * What `node` reads by path, or null: a file relation no catalog table stands for, a path-based Delta table
   * (`DESCRIBE HISTORY '/path'`), or a path-based change feed, unless it lies in a registered table's location
   * (Delta reads its own log with queries of the session it serves).
   */
  static String pathRead(SparkSession session, LogicalPlan node) {
    if (node instanceof LogicalRelation) {
      LogicalRelation relation = (LogicalRelation) node;
      if (relation.catalogTable().isDefined()) {
        return null;
      }
      BaseRelation source = relation.relation();
      if (source instanceof HadoopFsRelation) {
        scala.collection.immutable.Seq<Path> roots = ((HadoopFsRelation) source).location().rootPaths();
        List<String> paths = new ArrayList<>();
        scala.collection.Iterator<Path> it = roots.iterator();
        while (it.hasNext()) {
          paths.add(normalized(it.next().toUri()));
        }
        return !paths.isEmpty() && Locations.allRegistered(session, paths) ? null
            : "reading files by path (" + String.join(", ", paths) + ")";
      }
      return "reading " + source.getClass().getSimpleName().replace("$", "") + " by path";
    }
    if (node instanceof DataSourceV2Relation && ((DataSourceV2Relation) node).identifier().isEmpty()) {
      return "reading " + ((DataSourceV2Relation) node).table().name() + " by path";
    }
    if (node.getClass().getSimpleName().contains("PathBased")) {
      return "a table by path";
    }
    scala.collection.Iterator<Object> fields = node.productIterator();
    while (fields.hasNext()) {
      String path = deltaTablePath(session, fields.next());
      if (path != null && !Locations.allRegistered(session, Collections.singletonList(path))) {
        return "the Delta table at " + path;
      }
    }
    return null;
  }

  /** The path of a Delta table named by path (no catalog table behind it), or null. */
  private static String deltaTablePath(SparkSession session, Object field) {
    if (field == null || !field.getClass().getSimpleName().equals("DeltaTableV2")) {
      return null;
    }
    try {
      Option<?> catalogTable = (Option<?>) field.getClass().getMethod("catalogTable").invoke(field);
      if (catalogTable.isDefined()) {
        return null;
      }
      Path path = (Path) field.getClass().getMethod("path").invoke(field);
      return normalized(path.getFileSystem(session.sessionState().newHadoopConf()).makeQualified(path).toUri());
    } catch (ReflectiveOperationException | ClassCastException | java.io.IOException e) {
      return "(a Delta table this rule cannot place: " + e + ")";
    }
  }

  static String normalized(URI uri) {
    String text = new Path(uri).toString();
    return text.endsWith("/") ? text.substring(0, text.length() - 1) : text;
  }

  /** The registered tables' locations, cached; read again from the catalog when a path is not among them. */
  static final class Locations {
    private static volatile Set<String> known = Collections.emptySet();

    /** True when every path is a registered table's location or lies under one. */
    static boolean allRegistered(SparkSession session, List<String> paths) {
      if (within(known, paths)) {
        return true;
      }
      known = read(session);
      return within(known, paths);
    }

    private static boolean within(Set<String> locations, List<String> paths) {
      for (String path : paths) {
        boolean inside = false;
        for (String location : locations) {
          if (path.equals(location) || path.startsWith(location + "/")) {
            inside = true;
            break;
          }
        }
        if (!inside) {
          return false;
        }
      }
      return true;
    }

    private static Set<String> read(SparkSession session) {
      SessionCatalog catalog = session.sessionState().catalog();
      Set<String> out = new HashSet<>();
      scala.collection.Iterator<String> databases = catalog.listDatabases().iterator();
      while (databases.hasNext()) {
        scala.collection.Iterator<TableIdentifier> tables = catalog.listTables(databases.next()).iterator();
        while (tables.hasNext()) {
          TableIdentifier table = tables.next();
          if (table.database().isEmpty()) {
            continue;  // a temporary view
          }
          try {
            out.add(normalized(catalog.getTableMetadata(table).location()));
          } catch (Exception e) {
            // dropped meanwhile, or a view without a location: nothing to add
          }
        }
      }
      return Collections.unmodifiableSet(out);
    }
  }

  /** TRANSFORM … USING 'program' and reflect/java_method, or null. */
  private static String outsideSpark(LogicalPlan node) {
    if (node instanceof ScriptTransformation) {
      return "TRANSFORM ... USING (runs a program)";
    }
    scala.collection.Iterator<Expression> it = node.expressions().iterator();
    while (it.hasNext()) {
      if (it.next().find(e -> e instanceof CallMethodViaReflection).isDefined()) {
        return "reflect/java_method";
      }
    }
    return null;
  }

  /** The error a refused statement gets. */
  public static final class Refused extends SecurityException {
    private static final long serialVersionUID = 1L;

    Refused(String message) {
      super(message);
    }
  }
}
