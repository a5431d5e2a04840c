// flakyfs's command line (README.md): each command goes to whichever of the
// fault plan and the power-cut model owns its verb. Used for --rule at start
// and for the control socket at run time.
#pragma once

#include <string>
#include <string_view>

#include "fault_plan.h"
#include "power_cut_model.h"

namespace flakyfs {

// Applies one command line; returns "" or why it was refused. `reply` gets the answer.
std::string ApplyCommand(FaultPlan& plan, PowerCutModel& model, std::string_view command,
                         std::string* reply);

}  // namespace flakyfs
