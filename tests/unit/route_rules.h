// MakeRule: a RouteRule from glob patterns, for the router and tier tests.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>

#include "route/route_rule.h"

namespace detourfs {

inline RouteRule MakeRule(std::initializer_list<const char*> patterns, TierId tier,
                          Persist persist = Persist::kBatch, int line = 0) {
  RouteRule r;
  for (const char* p : patterns) {
    Glob g;
    EXPECT_TRUE(Glob::Compile(p, &g).ok()) << p;
    r.globs.push_back(g);
  }
  r.tier = tier;
  r.persist = persist;
  r.line = line;
  return r;
}

}  // namespace detourfs
