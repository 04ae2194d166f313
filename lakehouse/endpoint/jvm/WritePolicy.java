package sparkify.lakehouse;

import java.net.URI;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.CurrentUserContext;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.connector.catalog.Identifier;

import scala.Option;

/**
 * Who may write what over JDBC: the SQL endpoint's write policy, by schema and user.
 *
 * <ul>
 *   <li>The lakehouse's schemas (bronze, silver, gold, ops: whatever it declares) are read-only for every session.</li>
 *   <li>{@code analytics} and {@code analytics_*} are writable by the users of {@code thrift.writers} (none listed:
 *       every signed-in user; without sign-in, on a loopback endpoint, the server's local user).</li>
 *   <li>{@code dev_<user>} and {@code dev_<user>_*} are writable by that signed-in user alone (never without sign-in).</li>
 * </ul>
 *
 * <p>In a writable schema a session may create and replace Delta tables (with or without AS SELECT) and views, insert,
 * overwrite, merge, update, delete, truncate, drop, add columns, comment and set Delta properties; any session may make
 * temporary views. A table's files stay in its schema's own folder ({@code <spark.sql.warehouse.dir>/<schema>.db}):
 * a LOCATION (or {@code path} option) elsewhere is refused, and so is a write to a table whose files lie elsewhere.
 * Commands the policy does not know are refused, as are RESTORE, VACUUM, OPTIMIZE, CLONE, ADD JAR/FILE/ARCHIVE,
 * CREATE FUNCTION, global temporary views and temporary views over files. Every refusal names the rule and what the
 * user may write.
 *
 * <p>The signed-in user of a statement is the one Spark's Thrift server sets in {@link CurrentUserContext} while the
 * statement is analysed. {@link #configure} is called once by the server before it accepts sessions.
 */
public final class WritePolicy {

  private static final String ANALYTICS = "analytics";
  private static final String DEV = "dev_";

  /** Commands that read or change nothing but the session (SET is checked by {@link SettingsPolicy}). */
  private static final Set<String> SESSION_COMMANDS = new HashSet<>(Arrays.asList(
      "SetCommand", "ResetCommand", "SetCatalogAndNamespace", "SetNamespaceCommand", "SetCatalogCommand",
      "RefreshTableCommand"));
  private static final String[] READ_PREFIXES = {"Show", "Describe", "Explain"};

  /** Refused for every session, whatever the schema: the jobs' maintenance, and ways out of Spark. */
  private static final Map<String, String> NEVER = new HashMap<>();

  static {
    NEVER.put("RestoreTableCommand", "RESTORE");
    NEVER.put("VacuumTableCommand", "VACUUM");
    NEVER.put("OptimizeTableCommand", "OPTIMIZE");
    NEVER.put("CloneTableCommand", "CLONE");
    NEVER.put("CreateDeltaTableCommand", "CREATE TABLE … CLONE");
    NEVER.put("AddJarsCommand", "ADD JAR");
    NEVER.put("AddFilesCommand", "ADD FILE");
    NEVER.put("AddArchivesCommand", "ADD ARCHIVE");
    NEVER.put("CreateFunctionCommand", "CREATE FUNCTION");
    NEVER.put("CreateSQLFunctionCommand", "CREATE FUNCTION");
    NEVER.put("CreateFunction", "CREATE FUNCTION");
    NEVER.put("CreateUserDefinedFunction", "CREATE FUNCTION");
    NEVER.put("CreateTempViewUsing", "a temporary view over files (CREATE TEMPORARY VIEW … USING)");
    NEVER.put("InsertIntoDataSourceDirCommand", "INSERT OVERWRITE DIRECTORY");
    NEVER.put("InsertIntoHiveDirCommand", "INSERT OVERWRITE DIRECTORY");
  }

  /** What a client calls the commands the policy knows (the class names in the plan are Spark's and Delta's). */
  private static final Map<String, String> LABELS = new HashMap<>();

  static {
    String[][] labels = {
        {"CreateNamespace", "CREATE SCHEMA"}, {"DropNamespace", "DROP SCHEMA"},
        {"CreateTable", "CREATE TABLE"}, {"ReplaceTable", "CREATE OR REPLACE TABLE"},
        {"CreateTableAsSelect", "CREATE TABLE … AS SELECT"}, {"ReplaceTableAsSelect", "CREATE OR REPLACE TABLE … AS SELECT"},
        {"CreateTableLike", "CREATE TABLE … LIKE"}, {"CreateDataSourceTableCommand", "CREATE TABLE"},
        {"CreateDataSourceTableAsSelectCommand", "CREATE TABLE … AS SELECT"},
        {"AppendData", "INSERT"}, {"OverwriteByExpression", "INSERT OVERWRITE"}, {"OverwritePartitionsDynamic", "INSERT OVERWRITE"},
        {"ReplaceData", "a row-level write"}, {"WriteDelta", "a row-level write"},
        {"MergeIntoCommand", "MERGE"}, {"UpdateCommand", "UPDATE"}, {"DeleteCommand", "DELETE"},
        {"TruncateDeltaTableCommand", "TRUNCATE"}, {"TruncateTable", "TRUNCATE"},
        {"DropTable", "DROP TABLE"}, {"DropTableCommand", "DROP TABLE"},
        {"CreateViewCommand", "CREATE VIEW"}, {"AlterViewAsCommand", "ALTER VIEW"},
        {"AddColumns", "ALTER TABLE … ADD COLUMNS"}, {"AlterColumns", "ALTER TABLE … ALTER COLUMN"},
        {"DropColumns", "ALTER TABLE … DROP COLUMNS"}, {"RenameColumn", "ALTER TABLE … RENAME COLUMN"},
        {"SetTableProperties", "ALTER TABLE … SET TBLPROPERTIES"}, {"UnsetTableProperties", "ALTER TABLE … UNSET TBLPROPERTIES"},
        {"CommentOnTable", "COMMENT ON TABLE"}, {"RenameTable", "ALTER TABLE … RENAME TO"},
        {"AlterTableRenameCommand", "ALTER … RENAME TO"},
        {"SetTableLocation", "ALTER TABLE … SET LOCATION"},
    };
    for (String[] label : labels) {
      LABELS.put(label[0], label[1]);
    }
  }

  private static final String BY_PATH = "a table named by its path is not a table of a sandbox (write to a sandbox's "
      + "table by its name)";

  private static final String NEVER_LIST = "RESTORE, VACUUM, OPTIMIZE, CLONE, ADD JAR, CREATE FUNCTION, TRANSFORM and "
      + "reflect are refused to every JDBC session";

  private static volatile Config config = new Config("none", Collections.emptyList(), "", Collections.emptyList(), null);

  private WritePolicy() {
  }

  /** What the server was started with; see the class comment. */
  static final class Config {
    final String auth;
    final List<String> writers;
    final String localUser;
    final List<String> lakehouseSchemas;
    final String sandboxRoot;

    Config(String auth, List<String> writers, String localUser, List<String> lakehouseSchemas, String sandboxRoot) {
      this.auth = auth;
      this.writers = writers;
      this.localUser = localUser;
      this.lakehouseSchemas = lakehouseSchemas;
      this.sandboxRoot = sandboxRoot;
    }

    boolean signIn() {
      return !"none".equals(auth);
    }
  }

  /**
   * Set the policy (called by the server before any session opens): the sign-in mode (`none`, `password-file`,
   * `ldap`), `thrift.writers` (comma-separated; empty: every signed-in user), the server's OS user (the one user of
   * an endpoint without sign-in), the lakehouse's schemas (comma-separated) and spark.sql.warehouse.dir, under which
   * each schema has its folder.
   */
  public static void configure(String auth, String writers, String localUser, String lakehouseSchemas,
      String sandboxRoot) {
    config = new Config(auth, names(writers), localUser, names(lakehouseSchemas), sandboxRoot);
  }

  private static List<String> names(String csv) {
    List<String> out = new ArrayList<>();
    for (String name : csv.split(",")) {
      if (!name.trim().isEmpty()) {
        out.add(name.trim());
      }
    }
    return Collections.unmodifiableList(out);
  }

  // ------------------------------------------------------------------------------------------ who may write where

  /** The user a statement runs as: the signed-in user, or the server's local user on an endpoint without sign-in. */
  static String user() {
    Config c = config;
    if (!c.signIn()) {
      return c.localUser;
    }
    String user = CurrentUserContext.CURRENT_USER().get();
    return user == null || user.isEmpty() ? null : user;
  }

  /** The part of a schema name that stands for `user`: lower case, anything but letters, digits and '_' as '_'. */
  public static String schemaPart(String user) {
    return user.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9_]", "_");
  }

  static boolean isLakehouse(String schema) {
    return config.lakehouseSchemas.contains(schema.toLowerCase(Locale.ROOT));
  }

  static boolean writesAnalytics(String user) {
    Config c = config;
    return user != null && (c.writers.isEmpty() || c.writers.contains(user));
  }

  /** Null when `user` may write `schema`; otherwise the rule that says no. */
  static String schemaRefusal(String user, String schema) {
    Config c = config;
    String name = schema.toLowerCase(Locale.ROOT);
    if (isLakehouse(name)) {
      return name + " is the lakehouse's: its schemas (" + String.join(", ", c.lakehouseSchemas)
          + ") are read-only over JDBC (the lakehouse jobs write them; SELECT, SHOW, DESCRIBE and time travel work)";
    }
    if (name.equals(ANALYTICS) || name.startsWith(ANALYTICS + "_")) {
      if (writesAnalytics(user)) {
        return null;
      }
      return ANALYTICS + " and " + ANALYTICS + "_* are writable by thrift.writers ("
          + (c.writers.isEmpty() ? "every signed-in user" : String.join(", ", c.writers)) + ")";
    }
    if (name.startsWith(DEV)) {
      if (!c.signIn()) {
        return "dev_<user> schemas belong to a signed-in user, and this endpoint has no sign-in (thrift.auth = none)";
      }
      if (user != null) {
        String own = DEV + schemaPart(user);
        if (name.equals(own) || name.startsWith(own + "_")) {
          return null;
        }
      }
      return name + " is not " + (user == null ? "yours" : user + "'s")
          + ": dev_<user> and dev_<user>_* are writable by that signed-in user alone";
    }
    return name + " is not a sandbox (writable schemas are analytics, analytics_*, dev_<user> and dev_<user>_*)";
  }

  /** What `user` may write, for the end of a refusal: "ana may write analytics, analytics_*, dev_ana, dev_ana_*". */
  static String mayWrite(String user) {
    Config c = config;
    List<String> schemas = new ArrayList<>();
    if (writesAnalytics(user)) {
      schemas.add(ANALYTICS);
      schemas.add(ANALYTICS + "_*");
    }
    if (c.signIn() && user != null) {
      schemas.add(DEV + schemaPart(user));
      schemas.add(DEV + schemaPart(user) + "_*");
    }
    String who = user == null ? "a session without a signed-in user"
        : c.signIn() ? user : "the local user " + user + " (thrift.auth = none)";
    return who + " may write " + (schemas.isEmpty() ? "no schema" : String.join(", ", schemas))
        + (schemas.isEmpty() ? "" : " (and temporary views)");
  }

  // ------------------------------------------------------------------------------------------ the commands

  /** True for commands that change nothing (SHOW, DESCRIBE, EXPLAIN, SET, USE, ...). */
  static boolean readOnly(String name) {
    if (SESSION_COMMANDS.contains(name)) {
      return true;
    }
    for (String prefix : READ_PREFIXES) {
      if (name.startsWith(prefix)) {
        return true;
      }
    }
    return false;
  }

  /** What a write command does, and to what. */
  static final class Target {
    final String schema;  // null: nothing in the catalog (a temporary view)
    final String object;  // for the message: "analytics.plays" or "schema dev_ana"
    String location;  // a LOCATION it asks for, or the existing table's, or null
    String provider;  // for a new table, or null (the server's default: delta)
    Map<String, String> properties = Collections.emptyMap();

    Target(String schema, String object) {
      this.schema = schema;
      this.object = object;
    }
  }

  /** Thrown while a command is taken apart: the policy cannot place it, so it is refused. */
  static final class Unplaced extends RuntimeException {
    private static final long serialVersionUID = 1L;

    Unplaced(String message) {
      super(message);
    }
  }

  /** Null when `session` may run the command `node`; otherwise why not (the whole message for the client). */
  static String refusal(SparkSession session, LogicalPlan node) {
    String name = node.getClass().getSimpleName();
    if (readOnly(name)) {
      return null;
    }
    String user = user();
    if (NEVER.containsKey(name)) {
      return "this SQL endpoint refused " + NEVER.get(name) + " (" + name + "): " + NEVER_LIST + "; " + mayWrite(user);
    }
    String operation = LABELS.containsKey(name) ? LABELS.get(name) : describe(name);
    List<Target> targets;
    try {
      targets = targets(session, node, name);
    } catch (Unplaced e) {
      return "this SQL endpoint refused " + operation + ": " + e.getMessage() + "; " + mayWrite(user);
    } catch (ReflectiveOperationException | ClassCastException | IllegalArgumentException e) {
      targets = null;
    }
    if (targets == null) {
      return "this SQL endpoint refused " + operation + ": the write policy allows only the commands it knows in a "
          + "writable schema (tables, views, INSERT, MERGE, UPDATE, DELETE, DROP, ALTER … ADD COLUMNS); " + mayWrite(user);
    }
    for (Target target : targets) {
      String why = targetRefusal(session, user, target);
      if (why != null) {
        return "this SQL endpoint refused " + operation + (target.object == null ? "" : " on " + target.object) + ": "
            + why + "; " + mayWrite(user);
      }
    }
    return null;
  }

  private static String targetRefusal(SparkSession session, String user, Target target) {
    if (target.schema == null) {
      return null;  // a temporary view: it lives and dies with the session
    }
    String why = schemaRefusal(user, target.schema);
    if (why != null) {
      return why;
    }
    if (target.provider != null && !target.provider.equalsIgnoreCase("delta")) {
      return "tables in a sandbox are Delta tables (USING delta, or no USING), not " + target.provider;
    }
    for (String key : target.properties.keySet()) {
      String lower = key.toLowerCase(Locale.ROOT);
      if (lower.equals("path") || lower.equals("location")
          || (lower.contains(".") && (!lower.startsWith("delta.") || lower.startsWith("delta.logstore")))) {
        return "a sandbox table takes no option or property " + key + " (Delta's delta.* properties and plain names are fine)";
      }
    }
    if (target.location != null) {
      String folder = folder(session, target.schema);
      String location = qualified(session, target.location);
      if (location == null || folder == null || !(location.equals(folder) || location.startsWith(folder + "/"))) {
        return "its files would be at " + target.location + ", outside the schema's own folder " + folder
            + " (a sandbox keeps its tables' files there: leave LOCATION and path out)";
      }
    }
    return null;
  }

  /** The folder of `schema`'s tables: {@code <spark.sql.warehouse.dir>/<schema>.db}. */
  static String folder(SparkSession session, String schema) {
    String root = config.sandboxRoot != null ? config.sandboxRoot : session.sessionState().conf().warehousePath();
    return qualified(session, root + "/" + schema.toLowerCase(Locale.ROOT) + ".db");
  }

  /** A location as a fully qualified path without a trailing '/'; null when it climbs ('..') or cannot be read. */
  static String qualified(SparkSession session, String location) {
    if (location == null || location.contains("..")) {
      return null;
    }
    try {
      Path path = new Path(location);
      return EndpointExtension.normalized(
          path.getFileSystem(session.sessionState().newHadoopConf()).makeQualified(path).toUri());
    } catch (java.io.IOException | IllegalArgumentException e) {
      return null;
    }
  }

  /** What `node` writes. Null (or an exception) when the policy does not know the command: it is then refused. */
  static List<Target> targets(SparkSession session, LogicalPlan node, String name) throws ReflectiveOperationException {
    switch (name) {
      case "CreateNamespace": {
        Target t = namespace(get(node, "name"));
        Map<String, String> properties = map(get(node, "properties"));
        t.location = properties.get("location");
        return one(t);
      }
      case "DropNamespace":
        return one(namespace(get(node, "namespace")));
      case "CreateTable":
      case "ReplaceTable":
      case "CreateTableAsSelect":
      case "ReplaceTableAsSelect": {
        Target t = identifier(get(node, "name"));
        Object spec = get(node, "tableSpec");
        t.location = string(get(spec, "location"));
        t.provider = string(get(spec, "provider"));
        Map<String, String> keys = new HashMap<>(map(get(spec, "properties")));
        keys.putAll(map(get(spec, "options")));
        if (has(node, "writeOptions")) {
          keys.putAll(map(get(node, "writeOptions")));
        }
        t.properties = keys;
        return one(t);
      }
      case "CreateTableLike": {
        Target t = identifier(get(node, "name"));
        t.location = string(get(node, "location"));
        t.provider = string(get(node, "provider"));
        t.properties = map(get(node, "properties"));
        return one(t);
      }
      case "CreateDataSourceTableCommand":
      case "CreateDataSourceTableAsSelectCommand": {
        CatalogTable table = (CatalogTable) get(node, "table");
        Target t = table(session, table.identifier());
        t.provider = string(table.provider());
        Option<URI> uri = table.storage().locationUri();
        t.location = uri.isDefined() ? uri.get().toString() : null;
        t.properties = new HashMap<>(map(table.storage().properties()));
        t.properties.putAll(map(table.properties()));
        return one(t);
      }
      case "AppendData":
      case "OverwriteByExpression":
      case "OverwritePartitionsDynamic":
      case "ReplaceData":
      case "WriteDelta":
        return one(relation(get(node, "table")));
      case "MergeIntoCommand":
      case "UpdateCommand":
      case "DeleteCommand":
        return one(catalogTable(get(node, "catalogTable")));
      case "TruncateDeltaTableCommand":
      case "TruncateTable":
      case "DropTable":
        return one(resolved(get(node, "child")));
      case "AddColumns":
      case "AlterColumns":
      case "CommentOnTable":
      case "DropColumns":
      case "RenameColumn":
      case "UnsetTableProperties":
        return one(resolved(get(node, "table")));
      case "SetTableProperties": {
        Target t = resolved(get(node, "table"));
        t.properties = map(get(node, "properties"));
        return one(t);
      }
      case "SetTableLocation": {
        Target t = resolved(get(node, "table"));
        t.location = (String) get(node, "location");
        return one(t);
      }
      case "RenameTable": {
        Target from = resolved(get(node, "child"));
        List<String> newName = strings(get(node, "newName"));
        Target to = newName.size() == 1 ? new Target(from.schema, from.schema + "." + newName.get(0))
            : newName.size() == 2 ? new Target(newName.get(0), String.join(".", newName)) : null;
        if (to == null) {
          return null;
        }
        return Arrays.asList(from, to);
      }
      case "AlterTableRenameCommand": {  // a view's rename: ALTER VIEW v RENAME TO w
        TableIdentifier from = (TableIdentifier) get(node, "oldName");
        TableIdentifier to = (TableIdentifier) get(node, "newName");
        if (from.database().isEmpty() && session.sessionState().catalog().isTempView(from)) {
          return one(new Target(null, from.table()));
        }
        Target source = table(session, from);
        return Arrays.asList(source, table(session, to.database().isDefined() ? to : new TableIdentifier(to.table(),
            Option.apply(source.schema))));
      }
      case "DropTableCommand": {
        TableIdentifier id = (TableIdentifier) get(node, "tableName");
        if (id.database().isEmpty() && session.sessionState().catalog().isTempView(id)) {
          return one(new Target(null, id.table()));
        }
        return one(table(session, id));
      }
      case "CreateViewCommand": {
        String type = get(node, "viewType").getClass().getSimpleName().replace("$", "");
        TableIdentifier id = (TableIdentifier) get(node, "name");
        if (type.equals("LocalTempView")) {
          return one(new Target(null, id.table()));
        }
        if (!type.equals("PersistedView")) {
          throw new Unplaced("a global temporary view is shared by every session of the server (CREATE TEMPORARY VIEW is "
              + "the session's own)");
        }
        return one(table(session, id));
      }
      case "AlterViewAsCommand": {
        TableIdentifier id = (TableIdentifier) get(node, "name");
        if (id.database().isEmpty() && session.sessionState().catalog().isTempView(id)) {
          return one(new Target(null, id.table()));
        }
        return one(table(session, id));
      }
      default:
        return null;
    }
  }

  private static List<Target> one(Target target) {
    return Collections.singletonList(target);
  }

  /** `CREATE SCHEMA x` / `DROP SCHEMA x`: a ResolvedNamespace of one name in the session catalog. */
  private static Target namespace(Object plan) throws ReflectiveOperationException {
    requireSessionCatalog(get(plan, "catalog"));
    List<String> parts = strings(get(plan, "namespace"));
    if (parts.size() != 1) {
      throw new Unplaced("a nested namespace (" + String.join(".", parts) + ") is no sandbox");
    }
    return new Target(parts.get(0), "schema " + parts.get(0));
  }

  /** A ResolvedIdentifier (a table to create or drop) in the session catalog. */
  private static Target identifier(Object plan) throws ReflectiveOperationException {
    requireSessionCatalog(get(plan, "catalog"));
    return named((Identifier) get(plan, "identifier"));
  }

  /** A resolved table or view (ALTER, DROP, TRUNCATE): its name and, when it has one, its location. */
  private static Target resolved(Object plan) throws ReflectiveOperationException {
    switch (plan.getClass().getSimpleName()) {
      case "ResolvedTable":
        break;
      case "ResolvedIdentifier":
        return identifier(plan);
      case "ResolvedPersistentView":
        requireSessionCatalog(get(plan, "catalog"));
        return named((Identifier) get(plan, "identifier"));
      case "ResolvedTempView":
        return new Target(null, String.valueOf(get(plan, "identifier")));
      default:
        throw new Unplaced("the write policy cannot place its table (" + plan.getClass().getSimpleName() + ")");
    }
    requireSessionCatalog(get(plan, "catalog"));
    Target t = named((Identifier) get(plan, "identifier"));
    t.location = location(get(plan, "table"));
    return t;
  }

  /** The table a v2 write goes to (a DataSourceV2Relation of a catalog table). */
  private static Target relation(Object plan) throws ReflectiveOperationException {
    if (!plan.getClass().getSimpleName().equals("DataSourceV2Relation")) {
      throw new Unplaced("the write policy cannot place its table (" + plan.getClass().getSimpleName() + ")");
    }
    Object table = get(plan, "table");
    if (has(table, "catalogTable")) {
      return catalogTable(get(table, "catalogTable"));
    }
    Option<?> catalog = (Option<?>) get(plan, "catalog");
    Option<?> ident = (Option<?>) get(plan, "identifier");
    if (catalog.isEmpty() || ident.isEmpty()) {
      throw new Unplaced(BY_PATH);
    }
    requireSessionCatalog(catalog.get());
    return named((Identifier) ident.get());
  }

  /** Delta's MERGE, UPDATE and DELETE name their table by its catalog entry (none: a table by path, refused). */
  private static Target catalogTable(Object option) {
    Option<?> table = (Option<?>) option;
    if (table.isEmpty()) {
      throw new Unplaced(BY_PATH);
    }
    CatalogTable catalogTable = (CatalogTable) table.get();
    Option<String> database = catalogTable.identifier().database();
    if (database.isEmpty()) {
      throw new Unplaced("a table without a schema is in no sandbox");
    }
    Target t = new Target(database.get(), database.get() + "." + catalogTable.identifier().table());
    t.location = catalogTable.location().toString();
    return t;
  }

  /** A table named by a v1 command (no schema: the session's current one). */
  private static Target table(SparkSession session, TableIdentifier id) {
    String schema = id.database().isDefined() ? id.database().get() : session.sessionState().catalog().getCurrentDatabase();
    Target t = new Target(schema, schema + "." + id.table());
    TableIdentifier qualified = new TableIdentifier(id.table(), Option.apply(schema));
    try {
      if (session.sessionState().catalog().tableExists(qualified)) {
        CatalogTable existing = session.sessionState().catalog().getTableMetadata(qualified);
        if (existing.storage().locationUri().isDefined()) {
          t.location = existing.location().toString();
        }
      }
    } catch (Exception e) {  // no such schema: Spark says so when the command runs
      return t;
    }
    return t;
  }

  private static Target named(Identifier identifier) {
    String[] namespace = identifier.namespace();
    if (namespace.length != 1) {
      throw new Unplaced("a nested namespace (" + identifier + ") is no sandbox");
    }
    return new Target(namespace[0], namespace[0] + "." + identifier.name());
  }

  /** The location of a table object of a ResolvedTable (Delta's DeltaTableV2, or Spark's V1Table), or null. */
  private static String location(Object table) throws ReflectiveOperationException {
    if (has(table, "catalogTable")) {
      Option<?> catalogTable = (Option<?>) get(table, "catalogTable");
      if (catalogTable.isEmpty()) {
        throw new Unplaced(BY_PATH);
      }
      return ((CatalogTable) catalogTable.get()).location().toString();
    }
    if (has(table, "v1Table")) {
      CatalogTable v1 = (CatalogTable) get(table, "v1Table");
      return v1.storage().locationUri().isDefined() ? v1.location().toString() : null;
    }
    return null;
  }

  private static void requireSessionCatalog(Object catalog) throws ReflectiveOperationException {
    String name = (String) catalog.getClass().getMethod("name").invoke(catalog);
    if (!"spark_catalog".equals(name)) {
      throw new Unplaced("only schemas of the session catalog are writable, not of catalog " + name);
    }
  }

  // ------------------------------------------------------------------------------------------ reflection helpers

  private static boolean has(Object obj, String method) {
    try {
      obj.getClass().getMethod(method);
      return true;
    } catch (NoSuchMethodException e) {
      return false;
    }
  }

  private static Object get(Object obj, String method) throws ReflectiveOperationException {
    return obj.getClass().getMethod(method).invoke(obj);
  }

  private static String string(Object option) {
    Option<?> value = (Option<?>) option;
    return value.isDefined() ? String.valueOf(value.get()) : null;
  }

  @SuppressWarnings("unchecked")
  private static Map<String, String> map(Object scalaMap) {
    return scala.jdk.javaapi.CollectionConverters.asJava((scala.collection.Map<String, String>) scalaMap);
  }

  @SuppressWarnings("unchecked")
  private static List<String> strings(Object scalaSeq) {
    return new ArrayList<>(scala.jdk.javaapi.CollectionConverters.asJava((scala.collection.Seq<String>) scalaSeq));
  }

  /** "DropTableCommand" -> "DROP TABLE (DropTableCommand)". */
  static String describe(String name) {
    String base = name.replaceAll("(Command|Statement|Exec)$", "").replaceAll("^Delta", "");
    String words = base.replaceAll("([a-z0-9])([A-Z])", "$1 $2").toUpperCase(Locale.ROOT);
    return words + " (" + name + ")";
  }
}
