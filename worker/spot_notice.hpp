// The spot interruption notice of an EC2 instance, read from its instance metadata (IMDSv2):
// AWS announces the end of a spot instance about two minutes ahead there, and a host told at
// once can stop sending the node work and start its replacement while it still runs.
#pragma once

#include <string>

#include "worker/shared.hpp"

namespace skyworker {

/// What /latest/meta-data/spot/instance-action said: action ("terminate", "stop", "hibernate")
/// and time (ISO 8601, UTC), each cut to a bounded length.
struct SpotNotice {
  std::string action;
  std::string time;
};

/// Parses the body of an instance-action answer; false if it names no action.
bool parse_spot_notice(const std::string& body, SpotNotice& out);

/// Starts a thread that asks the metadata service at `addr` ("169.254.169.254" or
/// "host:port") every 5 s, as AWS advises, and sends one Notice frame to the host when a notice
/// appears, then stops. A service that does not answer is asked again later, quietly.
void start_spot_watch(Shared& shared, const std::string& addr);

}  // namespace skyworker
