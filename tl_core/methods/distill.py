"""Knowledge distillation from a finished run (the teacher) into a new, usually smaller, model."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tl_core.base.errors import ConfigError
from tl_core.base.inputs import adapt
from tl_core.methods.base import register_method, Param, RunContext, Step, HookedMethod


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(z_teacher/T) ‖ softmax(z_student/T)), averaged over the batch (Hinton et al., 2015)."""
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, 1)
    p_t = F.softmax(teacher_logits.detach() / t, 1)
    return F.kl_div(log_p_s, p_t, reduction="batchmean") * t * t


@register_method("distill")
class Distill(HookedMethod):
    """Distillation (Hinton et al., 2015) across domains.

    A finished run is the teacher. The student (this run's backbone) learns the source labels and
    the teacher's softened predictions on unlabelled target images:
    L = α·CE(C(f_s), y_s) + (1 − α)·T²·KL(softmax(z_teacher(x_t)/T) ‖ softmax(z_student(x_t)/T))
    """

    label = "Distillation from a finished run"
    family = "distillation"
    summary = ("Takes a model you already trained (say a large pretrained network adapted to the target) as a "
               "teacher and trains a new model, often much smaller, to reproduce the teacher's full probability "
               "outputs on target images, while still learning the source labels.")
    formula = "L = α·CE(C(f_s), y_s) + (1−α)·T²·KL(softmax(z_T(x_t)/T) ‖ softmax(z_S(x_t)/T))"
    helps = "A strong teacher exists and you need a faster or smaller model for the target."
    hurts = "The teacher is poor on the target: the student copies its mistakes."
    paper = "Hinton et al., Distilling the Knowledge in a Neural Network, NeurIPS-W 2014, arXiv:1503.02531"
    needs_pixels = True  # the teacher reads the target images
    params = {
        "teacher": Param("", help="id of a finished run whose model teaches (see the Compare page)", run_ref=True),
        "temperature": Param(4.0, 1.0, 20.0, "T, softening of both distributions"),
        "alpha": Param(0.5, 0.0, 1.0, "α, weight of the source labels (1 − α: the teacher)"),
    }

    @classmethod
    def check(cls, config) -> None:
        if not str(config.method.params.get("teacher", "")).strip():
            raise ConfigError("Distillation needs a teacher: set `teacher` to the id of a finished run "
                              "(its model must cover the same classes).")

    def bind(self, ctx: RunContext) -> None:
        self.teacher = self.refs["teacher"]  # resolved before training, outside the method
        if self.teacher.classes != list(ctx.data.classes):
            raise ConfigError(f"The teacher knows classes {self.teacher.classes}, this run needs "
                              f"{list(ctx.data.classes)}: pick a teacher trained on the same classes.")
        for p in self.teacher.model.parameters():
            p.requires_grad_(False)
        self.device = ctx.device

    @torch.no_grad()
    def teacher_logits(self, raw: torch.Tensor) -> torch.Tensor:
        return self.teacher.model(adapt(raw, self.teacher.spec, self.device)).float()

    def losses(self, step: Step):
        a = self.p["alpha"]
        kd = kd_loss(step.logits_t, self.teacher_logits(step.raw_t), self.p["temperature"])
        return {"source_ce": a * F.cross_entropy(step.logits_s, step.y_s), "distill": (1 - a) * kd,
                **self.target_supervised(step)}
