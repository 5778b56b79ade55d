// Commits an empty transaction through an installed xact. Exit status 0 only if it committed.
#include <xact/manager.hpp>
#include <xact/transaction.hpp>

#include <cstdio>

int main() {
  xact::ExplicitTransactionManager tm;
  tm.begin();
  auto outcome = tm.commit();
  if (!outcome.committed) {
    std::fputs("consumer: the transaction did not commit\n", stderr);
    return 1;
  }
  std::puts("consumer: committed");
  return 0;
}
