// pgjdbc through tablegate: two users, the same prepared query run past pgjdbc's prepareThreshold
// (it then switches to a named server-side statement), their own rows; a refusal's SQLSTATE; a
// transaction. Usage: java JdbcRegions PORT SSLMODE. Prints one line per check; tests/proxy.rs
// compares them.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class JdbcRegions {
    static final String QUERY =
        "SELECT string_agg(DISTINCT region, ',' ORDER BY region) FROM orders WHERE amount > ?";

    static Connection connect(String port, String sslmode, String user, String password)
            throws SQLException {
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", password);
        props.setProperty("sslmode", sslmode);
        return DriverManager.getConnection("jdbc:postgresql://127.0.0.1:" + port + "/shop", props);
    }

    public static void main(String[] args) throws Exception {
        String port = args[0], sslmode = args[1];
        String[][] users = {{"alice", "alice-secret"}, {"sam", "sam-secret"}};
        for (String[] user : users) {
            try (Connection conn = connect(port, sslmode, user[0], user[1]);
                 PreparedStatement statement = conn.prepareStatement(QUERY)) {
                String first = null;
                for (int run = 0; run < 10; run++) {
                    statement.setInt(1, 0);
                    try (ResultSet rows = statement.executeQuery()) {
                        rows.next();
                        String regions = rows.getString(1);
                        if (first == null) {
                            first = regions;
                        } else if (!first.equals(regions)) {
                            System.out.println(user[0] + " changed at run " + run + ": " + regions);
                        }
                    }
                }
                System.out.println(user[0] + " " + first);
            }
        }
        try (Connection conn = connect(port, sslmode, "alice", "alice-secret");
             Statement statement = conn.createStatement()) {
            try {
                statement.executeQuery("SELECT * FROM secret");
                System.out.println("alice read secret");
            } catch (SQLException e) {
                System.out.println("alice refused " + e.getSQLState());
            }
            conn.setAutoCommit(false);
            try (ResultSet rows = statement.executeQuery("SELECT count(*) FROM orders")) {
                rows.next();
                System.out.println("alice counts " + rows.getLong(1) + " orders in a transaction");
            }
            conn.commit();
        }
    }
}
