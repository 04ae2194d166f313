package sparkify.lakehouse;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.util.List;

import org.apache.hadoop.hive.common.ServerUtils;
import org.apache.hadoop.hive.conf.HiveConf;
import org.apache.hive.service.CompositeService;
import org.apache.hive.service.Service;
import org.apache.hive.service.cli.CLIService;
import org.apache.hive.service.cli.session.SessionManager;
import org.apache.hive.service.server.HiveServer2;
import org.apache.spark.SparkContext;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.hive.HiveUtils$;
import org.apache.spark.sql.hive.thriftserver.HiveThriftServer2;
import org.apache.spark.sql.hive.thriftserver.HiveThriftServer2$;

/**
 * Starts Spark's Thrift server as {@code HiveThriftServer2.startWithSparkSession(session, true)} does, with one
 * difference: between the server's init and its start, its session manager is wrapped in a
 * {@link GuardedSessionManager}, so that no session ever opens without the settings guard (not even one
 * that connects the moment the port opens).
 */
public final class GuardedThriftServer {

  private GuardedThriftServer() {
  }

  /** Start the server over `session` (the lakehouse's own, trusted session); the JVM exits if it cannot listen. */
  public static HiveThriftServer2 start(SparkSession session) throws ReflectiveOperationException {
    HiveThriftServer2$ companion = HiveThriftServer2$.MODULE$;
    companion.systemExitOnError().set(true);
    HiveConf hiveConf = HiveUtils$.MODULE$
        .newClientForExecution(session.sparkContext().conf(), session.sessionState().newHadoopConf()).conf();
    ServerUtils.cleanUpScratchDir(hiveConf);
    HiveThriftServer2 server = new HiveThriftServer2(session);
    server.init(hiveConf);
    guardSessions(server);
    // What a session starts with, taken once the execution client has put its Hive settings in place.
    SettingsPolicy.baseline(session);
    server.start();
    Method listenerAndUi = HiveThriftServer2$.class.getDeclaredMethod("createListenerAndUI", HiveThriftServer2.class,
        SparkContext.class);
    listenerAndUi.setAccessible(true);
    listenerAndUi.invoke(companion, server, session.sparkContext());
    return server;
  }

  private static void guardSessions(HiveThriftServer2 server)
      throws ReflectiveOperationException {
    CLIService cli = (CLIService) field(HiveServer2.class, "cliService").get(server);
    Field managerField = field(CLIService.class, "sessionManager");
    SessionManager original = (SessionManager) managerField.get(cli);
    GuardedSessionManager guarded = new GuardedSessionManager(server, original);
    managerField.set(cli, guarded);
    // The CLI service starts and stops the services in its list: the guarded manager instead of the original.
    @SuppressWarnings("unchecked")
    List<Service> services = (List<Service>) field(CompositeService.class, "serviceList").get(cli);
    int at = services.indexOf(original);
    if (at < 0) {
      throw new IllegalStateException("the Thrift server's CLI service does not list its session manager");
    }
    services.set(at, guarded);
  }

  private static Field field(Class<?> owner, String name) throws NoSuchFieldException {
    Field field = owner.getDeclaredField(name);
    field.setAccessible(true);
    return field;
  }
}
